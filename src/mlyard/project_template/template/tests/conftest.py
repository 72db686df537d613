"""Shared by tests/unit and tests/model."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

# Python's cyclic garbage collector runs every 700 new objects by default. Collecting the tests imports pandas,
# scikit-learn and MLflow: hundreds of thousands of objects that live until the process ends, scanned again by
# dozens of collections that find almost nothing. While the tests are collected it runs every 50,000 instead
# (about 0.3 s less CPU per run); the tests themselves run with the collector as it was.
COLLECTING_THRESHOLD = 50_000
_threshold_before: tuple[int, int, int] | None = None


def _pytest_is_the_program() -> bool:
    """`python -m pytest` or `pytest`, not pytest.main() inside a longer-lived Python (a notebook, registry.py ci)."""
    program = Path(sys.argv[0])
    return program.name in ("pytest", "py.test", "pytest.exe") or program.parts[-2:] == ("pytest", "__main__.py")


def pytest_sessionstart(session: pytest.Session) -> None:
    global _threshold_before
    _threshold_before = gc.get_threshold()
    if 0 < _threshold_before[0] < COLLECTING_THRESHOLD:  # 0: the collector is off, leave it so
        gc.set_threshold(COLLECTING_THRESHOLD, *_threshold_before[1:])


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Collection is over: the collector as it was for the tests. When pytest is the program, what collection
    imported is frozen first (never scanned again: it lives until the process ends anyway)."""
    if _pytest_is_the_program():
        gc.freeze()
    if _threshold_before is not None:
        gc.set_threshold(*_threshold_before)


def pytest_unconfigure(config: pytest.Config) -> None:
    """When pytest is the program (`python -m pytest`, `pytest`), its process ends now: let it exit without
    collecting pandas', scikit-learn's and MLflow's objects one by one (the interpreter's last collections cost
    half a second of CPU; the memory goes back to the system anyway). pytest run inside a longer-lived Python
    (`pytest.main()` in a notebook, mlops/registry.py ci) is left as it is."""
    if _pytest_is_the_program():
        gc.freeze()
