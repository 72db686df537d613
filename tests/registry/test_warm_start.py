"""The server starts each environment's MLflow server in the background (at its own start and when an
environment is created), so a first registry request does not wait for MLflow's imports. (Its warm scoring
process, reported in /health, is tested in tests/deployments/test_deployments.py, whose server keeps one.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    warm = {"MLYARD_REGISTRY_WARM": "1"}  # the default (tests turn it off)
    server = start_server(tmp_path_factory.mktemp("warm"), "--agents", "0", env=warm)
    yield server
    server.stop()


def wait_for_line(log: Path, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the server's log"
        time.sleep(0.2)


def test_each_environment_mlflow_server_starts_with_the_server_and_with_a_new_environment(warm_server: Server) -> None:
    server = warm_server
    wait_for_line(server.log, "registry warm: the MLflow server of environment 'dev' is ready")
    with server.client() as api:
        assert api.get("/mlflow/dev/api/2.0/mlflow/registered-models/search").status_code == 200
        assert api.post("/api/v1/environments", json={"name": "staging-env"}).status_code == 201
        wait_for_line(server.log, "registry warm: the MLflow server of environment 'staging-env' is ready")
        assert api.get("/mlflow/staging-env/api/2.0/mlflow/experiments/search",
                       params={"max_results": 5}).status_code == 200  # fmt: skip
    text = server.log.read_text(errors="replace")
    assert text.count("registry warm: the MLflow server of environment 'dev'") == 1  # started once, not again
    assert "environment 'test'" not in text and "environment 'prod'" not in text  # only the first (default 1)
