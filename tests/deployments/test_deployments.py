"""Model CD to the `local` target against a real server: real MLflow model versions, real scoring
servers, real HTTP through the deployment's stable front port."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TLS, Server, start_server
from tests.deployments.streams import RequestStream
from tests.registry.conftest import ROWS, Logged, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.long]  # a file of minutes: scheduled first
MODEL = "cd-model"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own (a test restarts it). A deployment gets one restart instead of three,
    so the restart limit is reached after two deaths rather than four scoring-server starts."""
    # With the warm pool of scoring processes on (the product's default; the suite's other servers turn it off):
    # deployments, redeploys and restarts here start from it when a warm process is ready.
    env = {"MLYARD_DEPLOYMENT_RESTART_LIMIT": "1", "MLYARD_SERVING_WARM_POOL": "1"}
    server = start_server(tmp_path_factory.mktemp("deployments"), env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def logged(srv: Server) -> list[Logged]:
    """Three versions of MODEL in the server's dev registry, each predicting differently on ROWS."""
    with srv.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    return register_versions(uri, MODEL)


def deploy(srv: Server, *args: str) -> dict:
    return json.loads(srv.cli("deployments", "create", MODEL, "--env", "dev", *args, "--json").stdout)


def predict(scoring_uri: str, body: dict, timeout: float = 30) -> list:
    answer = httpx.post(scoring_uri, json=body, timeout=timeout, verify=TLS)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def test_a_pool_with_nothing_to_serve_waits_and_says_so(srv: Server) -> None:
    """Before the registry holds a model (this file's first test: `logged` registers them), the warm pool has
    started nothing, and the server says it waits rather than that its zygote imports."""
    from mlyard.views import ServerStatusView

    with srv.client() as api:
        assert api.get("/api/v1/models", params={"env": "dev"}).json() == []
        pool = api.get("/health").json()["serving_pool"]
    assert pool == {"size": 1, "warm": 0, "starting": 0, "handed_out": 0, "cold_starts": 0, "zygote_warm": False,
                    "started": False}  # fmt: skip
    status = ServerStatusView.from_dict(json.loads(srv.cli("status", "--json").stdout))
    (scoring,) = [p for p in status.pools if p.name == "scoring"]
    assert (scoring.ready, scoring.starting, scoring.limit) == (0, 0, 1)
    assert scoring.detail == "starts once there is something to serve (a registered model or a deployment)"


def test_health_reports_the_warm_scoring_pool(srv: Server, logged: list[Logged]) -> None:
    """Once the registry holds a model (the pool waits for something to serve), before any deployment: one warm
    scoring process, ready, reported in /health and the server's log.
    (Moved from tests/registry/test_warm_start.py, whose server then needed a warm process of its own.)"""
    deadline = time.monotonic() + 240
    with srv.client() as api:
        while True:
            pool = api.get("/health").json()["serving_pool"]
            if pool["warm"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert pool == {"size": 1, "warm": 1, "starting": 0, "handed_out": 0, "cold_starts": 0, "zygote_warm": True,
                    "started": True}
    assert "scoring warm pool: 1 process(es)" in srv.log.read_text(errors="replace")


def test_errors_are_clear(srv: Server, logged: list[Logged]) -> None:
    cases = [
        (("--version", "9"), 3, f"model '{MODEL}' has no version 9 (versions: 1, 2, 3)"),
        (("--stage", "Staging"), 3, f"model '{MODEL}' has no version in Staging"),
        (("--version", "1", "--target", "aci"), 2, "unknown target 'aci': supported targets: local"),
        (("--version", "1", "--cpu", "512"), 2, "cpu=512 needs 512 cores; the local target has"),
    ]
    for args, code, message in cases:
        out = srv.cli("deployments", "create", MODEL, "--env", "dev", *args, check=False)
        assert (out.returncode, message in out.stderr, "Traceback" in out.stderr) == (code, True, False), out.stderr
    assert json.loads(srv.cli("deployments", "list", "--json").stdout) == []


def test_deploy_a_version_answers_every_input_format(srv: Server, logged: list[Logged]) -> None:
    # While the scoring server starts (seconds), the new deployment's front port is already bound: another
    # process (a second mlyard server on this machine) cannot take it in the meantime.
    with ThreadPoolExecutor(1) as pool:
        deploying = pool.submit(deploy, srv, "--version", "1")
        starting = None
        with srv.client() as api:
            while starting is None and not deploying.done():
                rows = api.get("/api/v1/deployments", params={"env": "dev"}).json()
                starting = next((r for r in rows if r["state"] == "starting"), None)
                time.sleep(0.02)
        assert starting is not None, "the deployment was never seen starting"
        with socket.socket() as sock, pytest.raises(OSError):
            sock.bind(("127.0.0.1", starting["port"]))
        found = deploying.result()
    assert found["port"] == starting["port"]
    assert (found["version"], found["state"], found["target"]) == ("1", "healthy", "local")
    uri = found["scoring_uri"]
    base = json.loads((srv.home / "settings.json").read_text())["serving_port_base"]  # dev's range: base + 0..99
    assert uri == f"{found['url']}/invocations" and base <= found["port"] < base + 100
    expected = logged[0].predictions
    records = [{"a": a, "b": b} for a, b in ROWS]
    bodies = [
        {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}},
        {"dataframe_records": records},
        {"instances": ROWS},
        {"inputs": ROWS},
    ]
    for body in bodies:
        assert predict(uri, body) == expected, body
    csv = "a,b\n" + "".join(f"{a},{b}\n" for a, b in ROWS)
    answer = httpx.post(uri, content=csv, headers={"Content-Type": "text/csv"}, timeout=30, verify=TLS)
    assert answer.json()["predictions"] == expected
    assert httpx.get(found["url"] + "/ping", timeout=10, verify=TLS).status_code == 200
    shown = json.loads(srv.cli("models", "show", MODEL, "--json").stdout)
    tags = next(v for v in shown["versions"] if str(v["version"]) == "1")["tags"]
    assert tags["scoring_uri"] == uri and tags["deployment_env"] == "dev" and tags["deployed_at"]
    assert (
        "Uvicorn running" in srv.cli("deployments", "logs", MODEL, "--env", "dev").stdout
        or Path(found["log_path"]).is_file()
    )
    listed = json.loads(srv.cli("deployments", "list", "--env", "dev", "--json").stdout)
    assert [(d["model"], d["version"], d["state"]) for d in listed] == [(MODEL, "1", "healthy")]


def test_redeploy_by_stage_under_a_stream_of_requests_has_no_failure(srv: Server, logged: list[Logged]) -> None:
    before = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    srv.cli("models", "stage", MODEL, "2", "Production")
    body = {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}}
    with RequestStream(before["scoring_uri"], body) as stream:
        after = deploy(srv)  # the default: the version in Production
        stream.wait_for(logged[1].predictions)
    failures, seen = stream.failures, stream.seen
    assert failures == []
    assert after["version"] == "2" and after["scoring_uri"] == before["scoring_uri"] and after["pid"] != before["pid"]
    assert seen[0] == logged[0].predictions and seen[-1] == logged[1].predictions
    switched = seen.index(logged[1].predictions)
    assert all(p == logged[1].predictions for p in seen[switched:]) and len(seen) > 10
    deadline = time.monotonic() + 60
    while psutil.pid_exists(before["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(before["pid"])


def test_the_endpoint_comes_back_after_a_server_restart(srv: Server, logged: list[Logged]) -> None:
    """... and the server's retention pass at start removes what its inference table and labels hold from before
    the default 90 days (docs/monitoring.md, "Retention"), nothing newer."""
    before = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    srv.stop()
    assert not psutil.pid_exists(before["pid"])
    tables = srv.home / "envs" / "dev" / "deployments" / MODEL
    recent = set((tables / "inference").rglob("*.parquet"))  # the requests of the tests before
    old = [tables / "inference" / "2020-01-01" / "00", tables / "labels" / "2020-01-01"]
    for folder in old:
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"")
    srv.start()
    deadline = time.monotonic() + 60
    while any(folder.exists() for folder in old) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(folder.exists() for folder in old) and not (tables / "inference" / "2020-01-01").exists()
    assert recent and all(path.exists() for path in recent)
    body = {"dataframe_records": [{"a": a, "b": b} for a, b in ROWS]}
    assert predict(before["scoring_uri"], body, timeout=180) == logged[1].predictions
    after = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    assert (after["state"], after["version"], after["url"]) == ("healthy", "2", before["url"])
    assert after["pid"] != before["pid"]


def test_the_scoring_server_runs_within_its_cpu_and_memory(srv: Server, logged: list[Logged]) -> None:
    found = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    assert (found["cpu"], found["memory"]) == (1.0, 2.0)  # the defaults
    process = psutil.Process(found["pid"])
    assert len(process.cpu_affinity()) == 1 and process.environ()["OPENBLAS_NUM_THREADS"] == "1"
    # A redeploy that cannot fit in its memory fails (422, exit 2), naming the limit; the running version goes on
    # serving.
    tiny = srv.cli("deployments", "create", MODEL, "--env", "dev", "--version", "3", "--memory", "0.05", check=False)
    assert tiny.returncode == 2 and "memory limit exceeded" in tiny.stderr and "(--memory 0.05 GB)" in tiny.stderr
    after = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    assert (after["pid"], after["version"], after["state"]) == (found["pid"], found["version"], "healthy")
    assert "the last redeploy failed" in after["message"]


def test_delete_leaves_no_process(srv: Server, logged: list[Logged]) -> None:
    found = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    assert psutil.pid_exists(found["pid"])
    out = srv.cli("deployments", "delete", MODEL, "--env", "dev")
    assert "deleted deployment" in out.stdout
    assert not psutil.pid_exists(found["pid"])
    with pytest.raises(httpx.ConnectError):
        httpx.get(found["url"] + "/ping", timeout=5, verify=TLS)
    missing = srv.cli("deployments", "show", MODEL, "--env", "dev", check=False)
    assert missing.returncode == 3 and f"no deployment of model '{MODEL}' in environment 'dev'" in missing.stderr


def test_a_scoring_server_that_dies_is_restarted_behind_the_same_uri_then_given_up(
    srv: Server, logged: list[Logged]
) -> None:
    """Like a container service's restart policy with a back-off limit: a scoring server that dies is restarted
    behind the same URI; with MLYARD_DEPLOYMENT_RESTART_LIMIT=1 (default 3), the 2nd death in 5 minutes is final.
    (One deployment for both: each restart or deployment is a scoring server start.)"""
    before = deploy(srv, "--version", "1")  # a new deployment: a new restart history
    os.killpg(before["pid"], signal.SIGKILL)  # as a crash would
    deadline = time.monotonic() + 30  # requests in flight at the crash fail; those that come after must not
    while _accepts(before["backend_port"]):
        assert time.monotonic() < deadline, "the killed scoring server still accepts connections"
        time.sleep(0.02)
    body = {"dataframe_records": [{"a": a, "b": b} for a, b in ROWS]}
    assert predict(before["scoring_uri"], body, timeout=120) == logged[0].predictions
    after = json.loads(srv.cli("deployments", "show", MODEL, "--env", "dev", "--json").stdout)
    assert after["state"] == "healthy" and after["pid"] != before["pid"] and after["url"] == before["url"]
    assert "restarted at" in after["message"] and "exited with code -9" in after["message"]
    with srv.client() as api:
        actions = [(e["action"], e["target"]) for e in api.get("/api/v1/audit").json()]
    assert ("deployment.restarted", f"dev/{MODEL}") in actions

    os.killpg(after["pid"], signal.SIGKILL)
    failed = _next_state(srv, after["pid"])
    assert failed["state"] == "failed"
    assert "stopped 2 times in 300 s" in failed["message"] and "not restarted again" in failed["message"]
    assert f"mlyard deployments logs {MODEL} --env dev" in failed["message"]
    srv.cli("deployments", "delete", MODEL, "--env", "dev")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _next_state(srv: Server, dead_pid: int, timeout: float = 120) -> dict:
    """The deployment once the supervisor has dealt with the death of `dead_pid`."""
    deadline = time.monotonic() + timeout
    with srv.client() as api:
        while time.monotonic() < deadline:
            doc = api.get(f"/api/v1/deployments/dev/{MODEL}").json()
            if doc["pid"] != dead_pid or doc["state"] != "healthy":
                return dict(doc)
            time.sleep(0.2)
    raise AssertionError(f"the supervisor did nothing about pid {dead_pid} in {timeout} s")


def test_deployments_started_from_the_warm_pool(srv: Server) -> None:
    """The scoring servers of this module's deployments: at least one was a warm pool process."""
    with srv.client() as api:
        pool = api.get("/health").json()["serving_pool"]
    assert pool["size"] == 1 and pool["handed_out"] >= 1, pool


def test_a_version_that_does_not_start_is_a_422_that_says_why(
    srv: Server, logged: list[Logged], tmp_path: Path
) -> None:
    """A model version whose files cannot be loaded: the deployment answers 422 with the scoring server's log
    (it used to be a 500), the CLI exits 2 without a traceback, and nothing is left deployed."""
    from mlflow import MlflowClient

    with srv.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: no_such_module_here\n")
    name = "cd-broken"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, broken.as_uri()).version
    with srv.client() as api:
        answer = api.post("/api/v1/deployments", json={"env": "dev", "model": name, "version": str(version)})
    assert answer.status_code == 422, answer.text
    assert "did not start" in answer.json()["error"] and "no_such_module_here" in answer.json()["error"]
    out = srv.cli("deployments", "create", name, "--env", "dev", "--version", str(version), check=False)
    before_log = out.stderr.split("\n--- ")[0]  # the scoring server's log follows, with the model's traceback
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "did not start" in before_log, out.stderr
    assert "Traceback" not in before_log and "no_such_module_here" in out.stderr
    rows = json.loads(srv.cli("deployments", "list", "--json").stdout)
    assert [r for r in rows if r["model"] == name and r["state"] == "healthy"] == []
