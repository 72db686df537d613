"""mlyard: an offline-first, self-hosted ML project platform."""

__version__ = "0.1.0"
