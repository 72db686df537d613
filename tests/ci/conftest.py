"""Fixtures of the in-process run engine tests (tests/ci/engine.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci.engine import Engine, open_engine
from tests.conftest import make_git


@pytest.fixture
def engine_database_url() -> str:
    """The state database of `engine`: "" is a fresh SQLite file in the test's home. Override (or
    parametrize) this fixture with an empty PostgreSQL database's URL to run the same tests there."""
    return ""


@pytest.fixture
def engine(tmp_path: Path, engine_database_url: str) -> Iterator[Engine]:
    """A fresh state database and repos folder, with no server and no orchestrator thread."""
    engine = Engine(open_engine(tmp_path / "home", engine_database_url), make_git(tmp_path))
    try:
        yield engine
    finally:
        engine.close()
