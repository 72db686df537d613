"""Shared by tests/unit and tests/model."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest


def pytest_unconfigure(config: pytest.Config) -> None:
    """When pytest is the program (`python -m pytest`, `pytest`), its process ends now: let it exit without
    collecting pandas', scikit-learn's and MLflow's objects one by one (the interpreter's last collections cost
    half a second of CPU; the memory goes back to the system anyway). pytest run inside a longer-lived Python
    (`pytest.main()` in a notebook, mlops/registry.py ci) is left as it is."""
    program = Path(sys.argv[0])
    if program.name in ("pytest", "py.test", "pytest.exe") or program.parts[-2:] == ("pytest", "__main__.py"):
        gc.freeze()
