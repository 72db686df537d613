"""The server starts each environment's MLflow server in the background (at its own start and when an
environment is created), so a first registry request does not wait for MLflow's imports; the first one is a
spare process that `mlyard server` starts before its own imports. (Its warm scoring process, reported in
/health, is tested in tests/deployments/test_deployments.py, whose server keeps one.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlyard.registry import sqlite_uri
from mlyard.registry.tracking_server import Spare, TrackingServer, TrackingServerSpec, remove_socket_folder
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
    # dev's is the spare `mlyard server` started before its imports; staging-env's a process of its own
    assert "the MLflow server of environment 'dev' is the one started with the server" in text
    assert "environment 'staging-env' is the one started" not in text
    assert "environment 'test'" not in text and "environment 'prod'" not in text  # only the first (default 1)


def test_a_spare_serves_the_environment_it_is_given_and_stops_with_the_server(tmp_path: Path) -> None:
    spare = Spare.start()
    server: TrackingServer | None = None
    try:
        spec = TrackingServerSpec.for_environment("dev", sqlite_uri(tmp_path / "env" / "mlflow.db"), spare.folder)
        server = spare.adopt(spec)
        assert server is not None and server.proc is not None
        assert spare.adopt(spec) is None  # adopted once
        transport = httpx.HTTPTransport(uds=str(spec.socket))
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=10) as client:
            deadline = time.monotonic() + 240
            while not spec.socket.exists() or client.get("/health").status_code != 200:
                assert server.running() and time.monotonic() < deadline, server.exit_report()
                time.sleep(0.2)
            found = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}).json()
        # the store, artifacts and log it was given after it started: the environment's
        assert found["experiment"]["artifact_location"] == (tmp_path / "env" / "mlartifacts" / "0").as_uri()
        assert spec.log.is_file()
        # its warm-up before adoption (MLflow's routes, by requests that match none) opened no store where it ran
        assert {p.name for p in spare.folder.iterdir()} <= {"spare.log", spec.socket.name}
        # the server's end of its standard input closes (the server exited, or was killed): it stops by itself
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(60) is not None
    finally:
        spare.discard()
        if server is not None:
            server.stop()
        remove_socket_folder(spare.folder)


def test_a_spare_that_is_not_adopted_stops_when_discarded() -> None:
    spare = Spare.start()
    proc = spare.proc
    assert proc is not None
    spare.discard()
    remove_socket_folder(spare.folder)
    assert proc.poll() is not None and spare.proc is None
