"""A real `mlyard server` per state backend (SQLite, PostgreSQL), shared by the tests of a module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import Server, start_server
from tests.postgres import BACKENDS, backend_database_url


@pytest.fixture(scope="module", params=BACKENDS)
def backend_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose state lives on SQLite or on a fresh database of the session's PostgreSQL: the session's
    `server` for the backend it runs on (MLYARD_TEST_DATABASE, default SQLite), a server of the module's own for
    the other. The tests use names of their own and leave no run for the agents."""
    if request.param == os.environ.get("MLYARD_TEST_DATABASE", "sqlite"):
        yield request.getfixturevalue("server")
        return
    url = backend_database_url(request, request.param)
    srv = start_server(tmp_path_factory.mktemp(f"server-{request.param}"), state_url=url)
    yield srv
    srv.stop()
