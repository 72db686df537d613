"""Pipeline runs end to end: real server with local agents, real repos, the real git client."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.ci.helpers import job, logs, make_repo, register, run, runs_of, show, wait_state
from tests.conftest import Git, Server, start_server
from tests.postgres import state_rows

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1] / "data" / "ci"


def yaml(name: str) -> str:
    return (DATA / name).read_text()


def test_manual_run_with_parameters_and_a_bad_parameter(server: Server, git: Git) -> None:
    make_repo(server, git, "manual", {"p.yml": yaml("params.yml")})
    register(server, "manual-p", "manual", "p.yml")
    queued = run(
        server, "manual-p", parameters={"target": "aci", "replicas": "3", "dryRun": "true"}, variables={"extra": "x1"}
    )
    done = wait_state(server, queued["id"])
    assert done["state"] == "succeeded" and done["reason"] == "Manual"
    assert "target=aci replicas=3 dry=True greeting=hello extra=x1" in logs(server, done["id"])
    with server.client() as api:
        bad = api.post("/api/v1/pipelines/manual-p/runs", json={"parameters": {"target": "moon"}})
        assert bad.status_code == 400
        assert "moon" in bad.json()["error"] and "local" in bad.json()["error"]
        bad_number = api.post("/api/v1/pipelines/manual-p/runs", json={"parameters": {"replicas": "many"}})
        assert bad_number.status_code == 400 and "replicas" in bad_number.json()["error"]
    assert len(runs_of(server, "manual-p")) == 1


def test_secrets_are_masked_and_only_mapped_through_env(server: Server, git: Git) -> None:
    make_repo(server, git, "sec", {"s.yml": yaml("secrets.yml")})
    register(server, "sec-p", "sec", "s.yml")
    secret = "hunter2-Sup3r-s3cret"
    with server.client() as api:
        api.put("/api/v1/pipelines/sec-p/variables/DB_PASSWORD", json={"value": secret, "secret": True})
        shown = api.get("/api/v1/pipelines/sec-p").json()
    assert shown["variables"] == [{"name": "DB_PASSWORD", "value": None, "secret": True}]
    done = wait_state(server, run(server, "sec-p")["id"])
    assert done["state"] == "succeeded"
    text = logs(server, done["id"])
    assert "plain: ***" in text and "b64: ***" in text and "not in env: [unset]" in text
    assert secret not in text and base64.b64encode(secret.encode()).decode() not in text
    stored = state_rows(server.home, "select value from pipeline_variables")
    assert all(secret not in v for (v,) in stored)


def _marked_processes(server: Server, run_id: int) -> list[psutil.Process]:
    """The processes of run `run_id` of this server (other servers of the test session number their runs too)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            env = proc.environ()
            if env.get("BUILD_BUILDID") == str(run_id) and env.get("SYSTEM_COLLECTIONURI") == f"{server.url}/":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_gone(server: Server, run_id: int, timeout: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = _marked_processes(server, run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _marked_processes(server, run_id)
    return left


def test_cancel_kills_the_step_and_its_children(server: Server, git: Git) -> None:
    make_repo(server, git, "slow", {"s.yml": yaml("slow.yml")})
    register(server, "slow-p", "slow", "s.yml")
    run_id = run(server, "slow-p")["id"]
    deadline = time.monotonic() + 30
    while "started children" not in logs(server, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_marked_processes(server, run_id)) >= 3
    with server.client() as api:
        assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    done = wait_state(server, run_id, timeout=30)
    assert done["state"] == "canceled"
    assert _wait_gone(server, run_id) == []


SLEEP_600 = """trigger: none
jobs:
- job: Sleepy
  steps:
  - bash: |
      echo "sleeping"
      sleep 600
    displayName: Sleep ten minutes
"""


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server: a 600-second job lease, agents that count a minute as 2 seconds (for step timeouts;
    the jobs of the other tests here run for less, or for a minute of 2 seconds' minutes), killed by a test."""
    srv = start_server(tmp_path_factory.mktemp("runs"), "--job-lease", "600", env={"MLYARD_AGENT_MINUTE_SECONDS": "2"})
    yield srv
    srv.stop()


@pytest.fixture
def long_lease(module_server: Server) -> Server:
    """`module_server`, running again if a test that kills and restarts it failed half-way."""
    assert module_server.proc is not None
    if module_server.proc.poll() is not None:
        module_server.start()
    return module_server


def test_cancel_stops_a_running_step_at_once_whatever_the_lease(long_lease: Server, git: Git) -> None:
    """`mlyard runs cancel` reaches the step at once, not at the agent's next lease renewal (a 600 s lease
    renews every 200 s): the deadline below is generous, far shorter than that."""
    srv = long_lease
    make_repo(srv, git, "sleepy", {"s.yml": SLEEP_600})
    register(srv, "sleepy-p", "sleepy", "s.yml")
    run_id = run(srv, "sleepy-p")["id"]
    deadline = time.monotonic() + 60
    while "sleeping" not in logs(srv, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked_processes(srv, run_id)
    srv.cli("runs", "cancel", str(run_id))
    done = wait_state(srv, run_id, timeout=60)
    assert done["state"] == "canceled"
    step = job(done, "Sleepy")["steps"][-1]
    assert (step["display_name"], step["state"]) == ("Sleep ten minutes", "canceled")
    assert _wait_gone(srv, run_id) == []


def test_a_local_agent_that_dies_fails_its_job_at_once_and_is_started_again(long_lease: Server, git: Git) -> None:
    """A local agent killed while it runs a job: the job fails as "agent lost" at once, not when its 600-second
    lease runs out (the deadline below is far shorter), its step's processes die with it, and the server starts
    the agent again, which takes the next job."""
    srv = long_lease
    run_id = _slow_run_under_way(srv, git, "agentdeath", SLEEP_600, "sleeping")
    assert _marked_processes(srv, run_id)
    name = job(show(srv, run_id), "Sleepy")["agent"]
    assert srv.proc is not None
    agents = [proc for proc in psutil.Process(srv.proc.pid).children() if _agent_name(proc) == name]
    assert len(agents) == 1, f"no single process of agent {name} under the server"
    agents[0].kill()
    failed = wait_state(srv, run_id, timeout=60)
    assert failed["state"] == "failed"
    assert job(failed, "Sleepy")["message"] == f"agent lost: agent {name} exited (code -9) while running this job"
    assert job(failed, "Sleepy")["steps"][-1]["state"] == "failed"
    assert _wait_gone(srv, run_id) == []
    deadline = time.monotonic() + 30
    while True:  # started again right after its jobs failed
        again = [proc for proc in psutil.Process(srv.proc.pid).children() if _agent_name(proc) == name]
        if (again and again[0].pid != agents[0].pid) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(again) == 1 and again[0].pid != agents[0].pid
    quick = wait_state(srv, run(srv, "agentdeath-quick")["id"])
    assert quick["state"] == "succeeded"


def _slow_run_under_way(server: Server, git: Git, repo: str, slow_yaml: str, marker: str) -> int:
    """A repo `repo` with pipelines `<repo>-slow` (`slow_yaml`) and `<repo>-quick` (params.yml); the id of a run of
    the slow one once `marker` is in its log (60 s at most)."""
    make_repo(server, git, repo, {"s.yml": slow_yaml, "p.yml": yaml("params.yml")})
    register(server, f"{repo}-slow", repo, "s.yml")
    register(server, f"{repo}-quick", repo, "p.yml")
    run_id = run(server, f"{repo}-slow")["id"]
    deadline = time.monotonic() + 60
    while marker not in logs(server, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    return int(run_id)


def _agent_name(proc: psutil.Process) -> str | None:
    """The `--name` of a local agent process (`python -m mlyard.background.local_agents ...`), else None."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return None
    if "mlyard.background.local_agents" not in argv or "--name" not in argv[:-1]:
        return None
    return argv[argv.index("--name") + 1]


def test_step_timeout_kills_the_process_group(long_lease: Server, git: Git) -> None:
    timeout_server = long_lease  # its agents count a minute as 2 seconds
    make_repo(timeout_server, git, "tmo", {"t.yml": yaml("timeout.yml")})
    register(timeout_server, "tmo-p", "tmo", "t.yml")
    run_id = run(timeout_server, "tmo-p")["id"]
    done = wait_state(timeout_server, run_id, timeout=60)
    assert done["state"] == "failed"
    step = job(done, "Job")["steps"][-1]
    assert step["state"] == "failed"
    assert any("timed out" in i["message"] for i in step["issues"]) or "timed out" in logs(timeout_server, run_id)
    assert _wait_gone(timeout_server, run_id) == []


def test_permit_flow_for_connection_group_and_environment_and_approval(server: Server, git: Git) -> None:
    make_repo(server, git, "prot", {"p.yml": yaml("protected.yml")})
    register(server, "prot-p", "prot", "p.yml")
    with server.client() as api:
        api.post(
            "/api/v1/connections",
            json={
                "name": "build-connection",
                "settings": {"WORKSPACE_URI": "file:///tmp/ws"},
                "secrets": {"API_KEY": "k3y-value"},
            },
        ).raise_for_status()
        api.post(
            "/api/v1/variable-groups", json={"name": "shared-settings", "variables": {"region": "local-1"}}
        ).raise_for_status()
        api.patch("/api/v1/environments/test", json={"approval_required": True}).raise_for_status()
    try:
        first = wait_state(server, run(server, "prot-p")["id"], {"waiting"})
        assert first["waiting_for"] == [
            "variablegroup:shared-settings",
            "connection:build-connection",
            "environment:test",
        ]
        assert f"mlyard runs permit {first['id']}" in first["message"]
        with server.client() as api:
            partial = api.post(
                "/api/v1/pipelines/prot-p/permissions", json={"resource": "connection:build-connection"}
            ).json()
            assert partial["granted"] is True
        left = ["variablegroup:shared-settings", "environment:test"]
        deadline = time.monotonic() + 30
        while (shown := show(server, first["id"]))["waiting_for"] != left and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shown["waiting_for"] == left and shown["state"] == "waiting"
        with server.client() as api:
            granted = api.post(f"/api/v1/runs/{first['id']}/permit").json()
        assert granted["granted"] == ["variablegroup:shared-settings", "environment:test"]
        waiting = _wait_job(server, first["id"], "Ship", "waiting")
        assert "mlyard runs approve" in job(waiting, "Ship")["message"]
        assert "workspace=file:///tmp/ws group=local-1" in logs(server, first["id"])
        with server.client() as api:
            api.post(f"/api/v1/runs/{first['id']}/approve", json={"comment": "ok"}).raise_for_status()
        done = wait_state(server, first["id"])
        assert done["state"] == "succeeded"
        assert "deploying to test" in logs(server, first["id"])

    finally:
        with server.client() as api:
            api.patch("/api/v1/environments/test", json={"approval_required": False})


def _wait_job(server: Server, run_id: int, name: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = show(server, run_id)
        if job(doc, name)["state"] == state:
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"job {name} of run {run_id} not {state}: {json.dumps(doc, indent=1)}")
        time.sleep(0.1)


def test_artifacts_across_stages_and_junit_summary(server: Server, git: Git) -> None:
    make_repo(server, git, "arts", {"a.yml": yaml("artifacts.yml")})
    register(server, "arts-p", "arts", "a.yml")
    run_id = run(server, "arts-p")["id"]
    done = wait_state(server, run_id)
    assert done["state"] == "succeeded", logs(server, run_id)
    assert f"payload-{run_id}" in logs(server, run_id)
    assert done["artifacts"] == ["pkg"]
    tests = done["tests"]
    assert (tests["total"], tests["passed"], tests["failed"], tests["skipped"]) == (3, 1, 1, 1)
    assert [f["name"] for f in tests["failures"]] == ["test_bad"]
    with server.client() as api:
        data = api.get(f"/api/v1/runs/{run_id}/artifacts/pkg").content
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("data.txt") for n in names)


def test_server_killed_during_a_run_fails_the_job_and_the_queue_goes_on(long_lease: Server, git: Git) -> None:
    own_server = long_lease  # the server's own agents' jobs fail at its restart, whatever the lease
    slow = _slow_run_under_way(own_server, git, "crash", yaml("slow.yml"), "started children")
    own_server.kill()
    own_server.start()
    failed = wait_state(own_server, slow, timeout=30)
    assert failed["state"] == "failed"
    assert job(failed, "Slow")["message"].startswith("agent lost")
    assert _wait_gone(own_server, slow) == []
    quick = wait_state(own_server, run(own_server, "crash-quick")["id"])
    assert quick["state"] == "succeeded"
