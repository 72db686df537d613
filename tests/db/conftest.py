"""A real `mlyard server` per state backend (SQLite, PostgreSQL), shared by the tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Server, start_server
from tests.postgres import BACKENDS, backend_database_url


@pytest.fixture(scope="module", params=BACKENDS)
def backend_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose state lives on SQLite or on a fresh database of the session's PostgreSQL."""
    url = backend_database_url(request, request.param)
    srv = start_server(tmp_path_factory.mktemp(f"server-{request.param}"), state_url=url)
    yield srv
    srv.stop()
