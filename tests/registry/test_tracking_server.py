"""`<server>/mlflow/<env>`: MLflow's own tracking server of each environment, behind mlyard's tokens.

The client is the real MLflow client in another process, given only `MLFLOW_TRACKING_URI` and
`MLFLOW_TRACKING_TOKEN`, as on a remote machine; what it writes is read back through mlyard's own API.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlyard.api.mlflow_mount import MlflowRequest, parse_request
from mlyard.errors import NotFound
from tests.conftest import Server

CHILD = "mlyard.registry.tracking_server"  # the module the MLflow server process runs (python -m)

CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys, tempfile
    import mlflow
    import pandas
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    name, work = sys.argv[1], pathlib.Path(sys.argv[2])
    mlflow.set_experiment(f"{name}-experiment")
    frame = pandas.DataFrame({"x": [1.0, 2.0], "label": [0, 1]})
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", 0.93)
        notes = work / "notes.txt"
        notes.write_text("logged from another process")
        mlflow.log_artifact(str(notes))
        mlflow.log_input(mlflow.data.from_pandas(frame, name="training-rows", targets="label"), context="training")

        class Echo(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return model_input

        echo = mlflow.pyfunc.log_model(name="echo", python_model=Echo(), pip_requirements=["mlflow"],
                                       signature=infer_signature(frame[["x"]]), registered_model_name=f"{name}-echo")
    client = MlflowClient()
    client.create_registered_model(name)
    versions = [client.create_model_version(name, run.info.artifact_uri, run_id=run.info.run_id).version
                for _ in range(3)]
    client.set_registered_model_alias(name, "production", versions[0])
    client.set_registered_model_alias(name, "champion", versions[0])
    client.set_registered_model_alias(name, "production", versions[1])  # version 1 goes to Archived
    client.transition_model_version_stage(name, versions[2], "Staging")  # the deprecated API, mirrored too
    staged = client.get_model_version_by_alias(name, "staging").version
    client.delete_registered_model_alias(name, "staging")  # version 3 goes back to None
    back = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes.txt", dst_path=str(work))
    print(json.dumps({
        "run_id": run.info.run_id,
        "artifact_uri": run.info.artifact_uri,
        "production": client.get_model_version_by_alias(name, "production").version,
        "legacy_stage": client.get_model_version(name, versions[1]).current_stage,
        "staged": staged,
        "downloaded": pathlib.Path(back).read_text(),
        "datasets": [(i.dataset.name, i.tags[0].value) for i in client.get_run(run.info.run_id).inputs.dataset_inputs],
        "signature": mlflow.models.get_model_info(f"models:/{name}-echo/1").signature.inputs.to_dict(),
        "echo_version": echo.registered_model_version,
    }))
    """
)


def run_client(server: Server, env: str, token: str, name: str, work: Path) -> subprocess.CompletedProcess[str]:
    """The MLflow client in a process of its own, knowing only the tracking URI and a token."""
    script = work / "client.py"
    script.write_text(CLIENT_SCRIPT)
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLYARD_"))}
    variables.update({"MLFLOW_TRACKING_URI": f"{server.url}/mlflow/{env}", "MLFLOW_TRACKING_TOKEN": token,
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"})  # fmt: skip
    return subprocess.run(
        [sys.executable, str(script), name, str(work)],
        cwd=work, env=variables, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def token_with(server: Server, *scopes: str) -> str:
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    out = server.cli("tokens", "create", "--name", f"mlflow-{uuid.uuid4().hex[:6]}", *args, "--json")
    return str(json.loads(out.stdout)["token"])


@pytest.mark.slow
@pytest.mark.long  # half a minute: its file is scheduled first
def test_the_mlflow_client_of_another_process_writes_to_the_environments_store(server: Server, tmp_path: Path) -> None:
    name = f"tracked-{uuid.uuid4().hex[:6]}"
    log = server.home / "envs" / "dev" / "mlflow-server.log"  # the environment's MLflow server's
    logged_before = log.stat().st_size if log.exists() else 0
    proc = run_client(server, "dev", server.token, name, tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["artifact_uri"].startswith("mlflow-artifacts:/")  # proxied: nothing on the client's disk
    assert result["downloaded"] == "logged from another process"
    assert result["production"] == "2" and result["legacy_stage"] == "Production" and result["staged"] == "3"
    # a dataset input (MLflow's pandas dataset) and a logged model with a signature, registered: what pipeline steps log
    assert result["datasets"] == [["training-rows", "training"]]
    assert result["signature"] == [{"type": "double", "name": "x", "required": True}]
    assert str(result["echo_version"]) == "1"
    # the environment's MLflow server (its imports made with the collector off, then frozen) served all of it
    # without an error
    written = log.read_bytes()[logged_before:].decode(errors="replace")
    assert "Traceback" not in written and " ERROR " not in written, written
    # its store commits to a write-ahead log (not a rollback journal created, synced and deleted per commit)
    with contextlib.closing(sqlite3.connect(server.home / "envs" / "dev" / "mlflow.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    # mlyard's own registry API reads the same store: stages mirrored, history written, by the token's user.
    shown = json.loads(server.cli("models", "show", name, "--env", "dev", "--json").stdout)
    stages = {str(v["version"]): v["stage"] for v in shown["versions"]}
    assert stages == {"1": "Archived", "2": "Production", "3": "None"}
    aliases = {alias: str(version) for alias, version in shown["aliases"].items()}
    assert aliases == {"champion": "1", "production": "2"}
    first = next(v for v in shown["versions"] if str(v["version"]) == "1")
    assert first["run_id"] == result["run_id"] and first["metrics"] == {"accuracy": 0.93}
    history = [(str(e["version"]), e["to"], e["by"]) for e in shown["history"]]
    assert history == [("1", "Production", server.username), ("2", "Production", server.username),
                       ("3", "Staging", server.username), ("3", "None", server.username)]  # fmt: skip

    # Other aliases are MLflow's own writes, serialised per model: concurrent ones all succeed.
    with server.client() as api, ThreadPoolExecutor(6) as pool:
        path = "/mlflow/dev/api/2.0/mlflow/registered-models/alias"
        bodies = [{"name": name, "alias": "candidate", "version": str(1 + i % 3)} for i in range(12)]
        assert {answer.status_code for answer in pool.map(lambda body: api.post(path, json=body), bodies)} == {200}

    # The artifact lives in the environment's artifact folder on the server.
    stored = list((server.home / "envs" / "dev" / "mlartifacts").rglob("notes.txt"))
    assert [p.read_text() for p in stored] == ["logged from another process"]

    # Another environment has a store of its own.
    listed = json.loads(server.cli("models", "list", "--env", "test", "--json").stdout)
    assert name not in [m["name"] for m in listed]
    with server.client() as api:
        answer = api.get("/mlflow/test/api/2.0/mlflow/registered-models/get", params={"name": name})
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        answer = api.get("/mlflow/dev/api/2.0/mlflow/registered-models/get", params={"name": name})
        assert answer.status_code == 200 and answer.json()["registered_model"]["name"] == name


@pytest.mark.slow
def test_refused_without_a_token_or_the_scope(server: Server) -> None:
    path = "/mlflow/dev/api/2.0/mlflow/experiments/get-by-name"
    with server.client(token="") as anonymous:
        answer = anonymous.get(path, params={"experiment_name": "Default"})
        assert answer.status_code == 401
        assert answer.json()["error_code"] == "UNAUTHENTICATED"
        assert "authentication required" in answer.json()["message"]
        assert answer.headers["www-authenticate"] == 'Bearer realm="mlyard"'
    with server.client(token="myd_" + "x" * 43) as wrong:
        answer = wrong.get(path, params={"experiment_name": "Default"})
        assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"

    with server.client(token="") as basic:  # MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
        answer = basic.get(path, params={"experiment_name": "Default"}, auth=(server.username, server.token))
        assert answer.status_code == 200 and answer.json()["experiment"]["name"] == "Default"

    reader = token_with(server, "repo:read")
    with server.client(token=reader) as api:
        assert api.get(path, params={"experiment_name": "Default"}).status_code == 200
        assert api.post("/mlflow/dev/api/2.0/mlflow/runs/search", json={"experiment_ids": ["0"]}).status_code == 200
        answer = api.post("/mlflow/dev/api/2.0/mlflow/experiments/create", json={"name": "not-allowed"})
        assert answer.status_code == 403
        assert answer.json() == {
            "error_code": "PERMISSION_DENIED",
            "message": "token lacks the 'pipelines:run' scope; create one with "
            "`mlyard tokens create --name NAME --scope pipelines:run`",
        }

    with server.client() as api:
        answer = api.get("/mlflow/nowhere/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"})
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert answer.json()["message"].startswith("environment 'nowhere' not found")
        answer = api.post("/mlflow/dev/api/3.0/mlflow/gateway/endpoints/create", json={})
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        too_big = api.post("/mlflow/dev/api/2.0/mlflow/runs/log-batch", content=b"{" + b" " * (2 * 1024**2) + b"}",
                           headers={"content-type": "application/json"})  # fmt: skip
        assert too_big.status_code == 413
        too_big = api.post("/mlflow/dev/api/2.0/mlflow/registered-models/alias", content=b" " * (65 * 1024))
        assert too_big.status_code == 413
        assert too_big.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                                  "message": "request body too large: an alias or stage change may have at most "
                                  "65536 bytes"}  # fmt: skip


def scope_of(method: str, path: str, raw: bytes | None = None, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": raw or path.encode(), "query_string": query}


@pytest.mark.parametrize(
    ("method", "path", "env", "mlflow_path", "write"),
    [
        ("GET", "/mlflow/dev/api/2.0/mlflow/experiments/get-by-name", "dev", "/api/2.0/mlflow/experiments/get-by-name",
         False),
        ("POST", "/mlflow/dev/api/2.0/mlflow/runs/search", "dev", "/api/2.0/mlflow/runs/search", False),
        ("POST", "/mlflow/prod/api/2.0/mlflow/registered-models/get-latest-versions", "prod",
         "/api/2.0/mlflow/registered-models/get-latest-versions", False),
        ("POST", "/mlflow/dev/api/2.0/mlflow/runs/create", "dev", "/api/2.0/mlflow/runs/create", True),
        ("PUT", "/mlflow/dev/api/2.0/mlflow-artifacts/artifacts/1/r/a.txt", "dev",
         "/api/2.0/mlflow-artifacts/artifacts/1/r/a.txt", True),
        ("DELETE", "/mlflow/dev/api/2.0/mlflow/registered-models/alias", "dev",
         "/api/2.0/mlflow/registered-models/alias", True),
        ("GET", "/mlflow/test/health", "test", "/health", False),
    ],
)  # fmt: skip
def test_requests_are_split_into_environment_path_and_scope(
    method: str, path: str, env: str, mlflow_path: str, write: bool
) -> None:
    parsed = parse_request(scope_of(method, path, query=b"a=1"))
    assert parsed == MlflowRequest(env, mlflow_path, mlflow_path.encode(), method, b"a=1", write)


def test_the_clients_path_encoding_is_kept() -> None:
    raw = b"/mlflow/dev/api/2.0/mlflow-artifacts/artifacts/1/r/a%20b.txt"
    parsed = parse_request(scope_of("GET", "/mlflow/dev/api/2.0/mlflow-artifacts/artifacts/1/r/a b.txt", raw))
    assert parsed.raw_path == b"/api/2.0/mlflow-artifacts/artifacts/1/r/a%20b.txt"


@pytest.mark.parametrize(
    "path",
    ["/mlflow/dev/", "/mlflow/dev/ajax-api/2.0/mlflow/runs/search", "/mlflow/dev/static-files/x.js",
     "/mlflow/dev/api/3.0/mlflow/gateway/endpoints/create", "/mlflow/dev/api/2.0/mlflow/assistant/run",
     "/mlflow/dev/graphql"],
)  # fmt: skip
def test_only_the_rest_api_is_passed_through(path: str) -> None:
    with pytest.raises(NotFound, match="is not served: mlyard passes MLflow's REST API"):
        parse_request(scope_of("POST", path))


def test_a_path_without_environment_is_refused() -> None:
    expected = r"^no environment in the path: use <server>/mlflow/<env> as MLFLOW_TRACKING_URI$"
    with pytest.raises(NotFound, match=expected):
        parse_request(scope_of("GET", "/mlflow/"))


def mlflow_server_of(server: Server, env: str) -> psutil.Process | None:
    """The MLflow server process of `env` under `server` (found by its working folder, the environment's: a fork's
    /proc environ is its zygote's)."""
    folder = str(server.home / "envs" / env)
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if CHILD in (proc.info["cmdline"] or []) and proc.cwd() == folder:
                return proc
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_a_dead_mlflow_server_is_restarted_and_a_remote_store_is_not_served(server: Server) -> None:
    path = "/mlflow/dev/api/2.0/mlflow/experiments/get-by-name"
    with server.client() as api:
        assert api.get(path, params={"experiment_name": "Default"}).status_code == 200
        first = mlflow_server_of(server, "dev")
        assert first is not None
        first.kill()
        # A request that meets the dying process gets 503 (MLflow's clients retry it); the next one finds the
        # process gone and starts a new one.
        answers = []
        for _ in range(100):
            answers.append(api.get(path, params={"experiment_name": "Default"}))
            if answers[-1].status_code != 503:
                break
            time.sleep(0.1)
        assert answers[-1].status_code == 200, answers[-1].text
        assert {a.json()["error_code"] for a in answers[:-1]} <= {"TEMPORARILY_UNAVAILABLE"}
        second = mlflow_server_of(server, "dev")
        assert second is not None and second.pid != first.pid
        # Both are forks of the server's one zygote (started by the first use: the suite's servers warm nothing),
        # as is another environment's.
        zygote = api.get("/health").json()["mlflow_zygote"]
        assert zygote["warm"] and not zygote["failed"]
        assert api.get("/mlflow/test/api/2.0/mlflow/experiments/get-by-name",
                       params={"experiment_name": "Default"}).status_code == 200  # fmt: skip
        other = mlflow_server_of(server, "test")
        assert other is not None and other.pid != second.pid
        assert second.ppid() == other.ppid() == zygote["pid"]

        name = f"remote{uuid.uuid4().hex[:6]}"
        server.cli("environments", "create", name, "--mlflow-tracking-uri", "https://mlflow.example.com")
        answer = api.get(f"/mlflow/{name}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"})
        assert answer.status_code == 400
        assert answer.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"environment {name!r} uses the MLflow tracking server https://mlflow.example.com: use that URL "
            "directly (mlyard serves /mlflow/<env> only for environments with the embedded store)",
        }


@pytest.mark.slow
def test_artifacts_logged_on_the_servers_store_are_served_over_http(server: Server) -> None:
    """A workspace job logs to the environment's SQLite store with a `file://` artifact location on the
    server: through `/mlflow/<env>` that location reads as `mlflow-artifacts:/...`, which the server serves,
    and the artifacts themselves pass unchanged (a JSON artifact naming the path included)."""
    from mlflow import MlflowClient

    name = f"job-{uuid.uuid4().hex[:6]}"
    store = server.home / "envs" / "dev"
    folder = (store / "mlartifacts" / name).resolve()
    local = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = local.create_experiment(f"/ml_apps/{name}", artifact_location=folder.as_uri())
    run = local.create_run(experiment)
    written = folder / run.info.run_id / "artifacts"
    written.mkdir(parents=True)
    data = json.dumps({"where": f"{folder}/x"})
    (written / "data.json").write_text(data)
    with server.client() as api:
        answer = api.get("/mlflow/dev/api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id})
        assert answer.status_code == 200, answer.text
        uri = answer.json()["run"]["info"]["artifact_uri"]
        assert uri == f"mlflow-artifacts:/{name}/{run.info.run_id}/artifacts"
        got = api.get(f"/mlflow/dev/api/2.0/mlflow-artifacts/artifacts/{name}/{run.info.run_id}/artifacts/data.json")
        assert got.status_code == 200 and got.text == data
