"""The scoring server as a real process on a free loopback port, spoken to over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import mlflow
import psutil
import pytest

from mlyard.serving.process import Endpoint, EndpointFailed, start_endpoint, stop_process_group
from tests.conftest import TLS, free_port
from tests.serving.cases import CASES, ERROR_CASES, OK_CASES, ids, message_pattern
from tests.serving.conftest import MODEL, Store

pytestmark = pytest.mark.slow


def post(endpoint: Endpoint, body: str, content_type: str) -> httpx.Response:
    return httpx.post(
        f"{endpoint.url}/invocations", content=body.encode(), headers={"Content-Type": content_type}, verify=TLS
    )


@pytest.mark.parametrize("case", OK_CASES, ids=ids(OK_CASES))
def test_predictions_equal_model_predict(case: dict[str, Any], endpoint: Endpoint, store: Store) -> None:
    response = post(endpoint, case["body"], case["content_type"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"predictions": store.predict(case["rows"])}


@pytest.mark.parametrize("case", ERROR_CASES, ids=ids(ERROR_CASES))
def test_bad_input_gets_mlflow_error(case: dict[str, Any], endpoint: Endpoint) -> None:
    response = post(endpoint, case["body"], case["content_type"])
    assert response.status_code == case["status"]
    if case["status"] == 415:
        assert response.headers["content-type"] == "text/plain"
        assert message_pattern(case).match(response.text)
        return
    body = response.json()
    assert body["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert message_pattern(case).match(body["message"])


def test_every_case_is_covered() -> None:
    assert len(OK_CASES) + len(ERROR_CASES) == len(CASES)


def test_ping_health_version(endpoint: Endpoint) -> None:
    ping = httpx.get(f"{endpoint.url}/ping", verify=TLS)
    assert (ping.status_code, ping.text) == (200, "\n")
    health = httpx.get(f"{endpoint.url}/health", verify=TLS)
    assert (health.status_code, health.json()) == (200, {"status": "ok", "model_uri": f"models:/{MODEL}@champion"})
    version = httpx.get(f"{endpoint.url}/version", verify=TLS)
    assert version.json() == {
        "mlflow_version": mlflow.__version__,
        "model_uri": f"models:/{MODEL}@champion",
        "model_name": MODEL,
        "model_version": "1",
        "loaded_uri": f"models:/{MODEL}/1",
        "flavor": "mlflow.sklearn",
    }


def test_unknown_route_and_method(endpoint: Endpoint) -> None:
    missing = httpx.get(f"{endpoint.url}/predict", verify=TLS)
    assert (missing.status_code, missing.json()) == (
        404,
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": "no route /predict: use /invocations, /ping, /health or /version",
        },
    )
    wrong = httpx.get(f"{endpoint.url}/invocations", verify=TLS)
    assert (wrong.status_code, wrong.json()) == (
        405,
        {"error_code": "METHOD_NOT_ALLOWED", "message": "/invocations accepts POST only"},
    )


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_start_and_stop_leave_no_process(store: Store, tmp_path: Path) -> None:
    endpoint = start_endpoint(
        f"models:/{MODEL}/Staging",
        port=free_port(),
        tracking_uri=store.uri,
        log_file=tmp_path / "staging.log",
    )
    assert httpx.get(f"{endpoint.url}/version", verify=TLS).json()["model_version"] == "2"
    assert _group_members(endpoint.pid) == [endpoint.pid]
    assert endpoint.stop() == -signal.SIGTERM  # after a graceful shutdown, not a SIGKILL
    assert not endpoint.alive()
    assert not psutil.pid_exists(endpoint.pid)
    assert _group_members(endpoint.pid) == []


def test_stop_by_pid_leaves_other_processes_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        stop_process_group(other.pid, timeout=1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(timeout=10)


def test_failed_start_reports_the_log_and_leaves_no_process(store: Store, tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(EndpointFailed) as caught:
        start_endpoint(
            "models:/nope/1",
            port=free_port(),
            tracking_uri=store.uri,
            log_file=tmp_path / "nope.log",
        )
    message = str(caught.value)
    assert "exited with code 3 before it was healthy" in message
    assert "error: registered model 'nope' not found in the registry" in message
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model-uri", "models:/a/b/c"],
            "error: invalid model URI 'models:/a/b/c': expected models:/NAME/VERSION, models:/NAME@ALIAS "
            "or models:/NAME/STAGE",
        ),
        (
            ["--model-uri", "models:/a/1"],
            "error: models:/a/1 needs a registry: pass --tracking-uri or set MLFLOW_TRACKING_URI",
        ),
    ],
)
def test_command_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mlyard.serving", *args, "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (proc.returncode, proc.stderr.strip().splitlines()[-1]) == (2, message)
    assert list(tmp_path.iterdir()) == []  # MLflow's default store (./mlflow.db) was not created


def test_stop_by_recorded_pid(endpoint: Endpoint) -> None:
    """After a platform restart only the pid is known: stop_process_group stops the endpoint. The module's
    endpoint (a scoring server start less): this test is the last of the file to use it."""
    assert endpoint.alive() and _group_members(endpoint.pid) == [endpoint.pid]
    stop_process_group(endpoint.pid)
    assert endpoint.process.wait(timeout=10) == -signal.SIGTERM  # uvicorn exits by re-raising SIGTERM
    assert _group_members(endpoint.pid) == []
