"""Fixtures of the in-process run engine tests (tests/ci/engine.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci.engine import Engine, open_engine
from tests.conftest import make_git


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh state database (SQLite) and repos folder, with no server and no orchestrator thread."""
    platform = open_engine(tmp_path / "home")
    try:
        yield Engine(platform, make_git(tmp_path))
    finally:
        platform.close()
