"""Secret masking: every secret value, and its base64 and URL-encoded forms, becomes `***` in log lines.

Like Azure's agent, whole values are masked, never substrings of them. Values shorter than
:data:`MIN_SECRET_LENGTH` characters are not masked (masking every `1` or `a` would make logs unreadable);
a multi-line secret is also masked line by line, since logs are kept per line.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 2
MASK = "***"


def secret_forms(value: str) -> set[str]:
    """The forms of one secret that are masked: itself, base64 (padded or not, also of the value followed
    by a newline, as `echo "$S" | base64` prints it) and URL-encoded (`quote`, `quote_plus`)."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = {value}
    for raw in (value, value + "\n"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms.update({encoded, encoded.rstrip("=")})
    forms.update({quote(value, safe=""), quote(value), quote_plus(value)})
    for line in value.splitlines():
        if len(line.strip()) >= MIN_SECRET_LENGTH:
            forms.add(line.strip())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Masker:
    """Replaces registered secrets in text; longer forms first so no part of a longer one leaks."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in secrets or ():
            self.add(value)

    def add(self, value: str) -> None:
        """Register a secret value (no effect for short values)."""
        new = secret_forms(value) - self._forms
        if not new:
            return
        self._forms |= new
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
