"""`mlyard agent` as a real process on "another machine", against a real server that has no agents of
its own: claiming, output variables and artifacts across stages, SIGTERM, server restarts and leases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.conftest import processes_with
from tests.ci.helpers import job, logs, make_repo, register, run, show, wait_state
from tests.conftest import WARM_OFF, Git, Server, start_server

pytestmark = pytest.mark.slow

STAGES = """trigger: none
stages:
- stage: Build
  jobs:
  - job: make
    steps:
    - script: |
        mkdir -p out && echo weights > out/w.txt
        echo "##vso[task.setvariable variable=v;isOutput=true]1"
      name: build
    - publish: out
      artifact: model
- stage: Use
  jobs:
  - job: use
    variables:
      v: $[ stageDependencies.Build.make.outputs['build.v'] ]
    steps:
    - download: current
      artifact: model
    - script: cat "$(Pipeline.Workspace)/model/w.txt"; echo "v is $(v)"
"""

SLOW = """trigger: none
variables:
  TEST_MARK: {mark}
steps:
- script: echo started; sleep {seconds}; echo finished
"""


@dataclass
class Agent:
    """A `mlyard agent` process with its own work dir and log."""

    server: Server
    token: str
    name: str
    work: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.work.parent / f"agent-{self.name}.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("MLYARD_URL", "MLYARD_TOKEN", "MLYARD_AGENT_TOKEN")}
        env.update(WARM_OFF)  # no warm step sandbox (on by default): the suite's steps run cold
        argv = [sys.executable, "-m", "mlyard", "agent", "--url", self.server.url, "--token", self.token,
                "--name", self.name, "--work-dir", str(self.work)]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def agent_token(server: Server) -> str:
    """A new token with the `agent` scope (over the API: `tokens create` is tests/foundation/test_cli.py's)."""
    with server.client() as api:
        created = api.post("/api/v1/tokens", json={"name": f"agent-{uuid.uuid4().hex[:6]}", "scopes": ["agent"]})
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def start_remote(tmp_path: Path, *, lease: int, name: str) -> tuple[Server, Agent]:
    """A server without local agents and with a short job lease, and one remote agent process."""
    server = start_server(tmp_path, "--agents", "0", "--job-lease", str(lease))
    agent = Agent(server, agent_token(server), name, tmp_path / "agent" / "work")
    agent.work.parent.mkdir(parents=True)
    agent.start()
    return server, agent


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("remote"), "--agents", "0", "--job-lease", "3")
    yield server
    server.stop()


@pytest.fixture
def short_lease(module_server: Server) -> Server:
    """The module's server without local agents and with a 3-second job lease; running again if a test that
    kills and restarts it failed half-way."""
    assert module_server.proc is not None
    if module_server.proc.poll() is not None:
        module_server.start()
    return module_server


@pytest.fixture
def remote(short_lease: Server, tmp_path: Path) -> Iterator[tuple[Server, Agent]]:
    """`short_lease` and a remote agent process of the test's own."""
    agent = Agent(short_lease, agent_token(short_lease), f"remote-{uuid.uuid4().hex[:6]}", tmp_path / "agent" / "work")
    agent.work.parent.mkdir(parents=True)
    agent.start()
    yield short_lease, agent
    agent.kill()


def test_a_remote_agent_runs_stages_with_outputs_and_artifacts_and_stops_on_sigterm(
    remote: tuple[Server, Agent], git: Git
) -> None:
    server, agent = remote
    doc = wait_state(server, queue(server, git, "stages", STAGES))
    text = logs(server, doc["id"])
    assert doc["state"] == "succeeded", text
    assert job(doc, "make")["agent"] == job(doc, "use")["agent"] == agent.name
    assert "weights" in text and "v is 1" in text
    assert agent.terminate() == 0
    output = agent.log.read_text()
    assert f"agent {agent.name} working in {agent.work}, claiming jobs from {server.url}" in output


def test_a_job_survives_a_server_restart_shorter_than_its_lease(tmp_path: Path, git: Git) -> None:
    server, agent = start_remote(tmp_path, lease=60, name="remote-2")  # far longer than a restart, even under load
    try:
        run_id = queue(server, git, "restart", SLOW.format(mark=uuid.uuid4().hex, seconds=6))
        _wait_for_log(server, run_id, "started")
        server.kill()
        server.start()  # the job's agent is not one of the server's own: the job is not failed
        doc = wait_state(server, run_id)
        assert doc["state"] == "succeeded", logs(server, run_id)
        assert job(doc, "Job")["agent"] == "remote-2"
        assert "finished" in logs(server, run_id)  # lines sent after the restart were recorded too
    finally:
        agent.kill()
        server.stop()


def test_an_agent_cut_off_past_its_lease_cancels_the_job_and_the_server_fails_it(
    remote: tuple[Server, Agent], git: Git
) -> None:
    server, agent = remote
    mark = uuid.uuid4().hex
    run_id = queue(server, git, "cut-off", SLOW.format(mark=mark, seconds=120))
    _wait_for_log(server, run_id, "started")
    assert processes_with("TEST_MARK", mark)
    server.kill()
    deadline = time.monotonic() + 30  # no heartbeat for longer than the 3-second lease: the agent gives up
    while processes_with("TEST_MARK", mark):
        assert time.monotonic() < deadline, "the agent did not cancel the job it could not report"
        time.sleep(0.2)
    server.start()
    doc = wait_state(server, run_id)
    assert doc["state"] == "failed"
    assert "agent lost" in job(doc, "Job")["message"] and "lease expired" in job(doc, "Job")["message"]
    # the agent goes on claiming: the next run is its
    after = wait_state(server, queue(server, git, "after", "trigger: none\nsteps:\n- script: echo after\n"))
    assert after["state"] == "succeeded" and job(after, "Job")["agent"] == agent.name


def test_agent_names_local_n_are_the_servers_own(short_lease: Server) -> None:
    server = short_lease  # a server without local agents: local-N are reserved all the same
    token = agent_token(server)
    out = server.cli("agent", "--url", server.url, "--token", token, "--name", "local-1", check=False)
    assert out.returncode == 2 and "reserved for the server's own agents" in out.stderr, out.stderr
    with server.client(token) as api:
        answer = api.post("/api/v1/agent/claim", json={"agent": "local-3", "wait": 0})
        assert answer.status_code == 400 and "reserved" in answer.json()["error"]
        answer = api.post("/api/v1/agent/claim", json={"agent": "bad name", "wait": 0})
        assert answer.status_code == 400 and "letters, digits" in answer.json()["error"]
    out = server.cli("agent", "--url", server.url, "--token", server.token + "x", check=False)
    assert out.returncode == 5 and "error:" in out.stderr, out.stderr


def queue(server: Server, git: Git, name: str, yaml: str) -> int:
    """Push `yaml` to a new repo `name`, register pipeline `name` on it and queue a run; its id."""
    make_repo(server, git, name, {"azure-pipelines.yml": yaml})
    register(server, name, name, "azure-pipelines.yml")
    return int(run(server, name)["id"])


def _wait_for_log(server: Server, run_id: int, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in logs(server, run_id):
        assert time.monotonic() < deadline, f"no {text!r} in the log of run {run_id}: {logs(server, run_id)}"
        time.sleep(0.1)


def test_a_claim_whose_agent_hung_up_takes_no_job(short_lease: Server, git: Git) -> None:
    """An agent killed (or stopped) while its claim waits: the server sees its connection close and ends the claim,
    so the next job queued waits for a live agent instead of going to the dead one (and failing as "agent lost" once
    its lease ran out)."""
    host, port = short_lease.url.removeprefix("http://").split(":")
    body = json.dumps({"agent": "hung-up", "wait": 30}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as hung_up:  # a claim waiting up to 30 s ...
        hung_up.sendall(b"POST /api/v1/agent/claim HTTP/1.1\r\nHost: " + host.encode() + b"\r\nAuthorization: Bearer "
                        + agent_token(short_lease).encode() + b"\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        time.sleep(1.0)  # ... under way in the server
    # ... whose agent is gone: the connection closed
    run_id = queue(short_lease, git, "after-hang-up", SLOW.format(mark=uuid.uuid4().hex, seconds=1))
    try:
        wait_state(short_lease, run_id, {"running"})  # compiled: its job queued (the hung-up claim would take it now)
        time.sleep(1.0)
        [job] = [j for stage in show(short_lease, run_id)["stages"] for j in stage["jobs"]]
        assert job["state"] == "queued" and not job.get("agent"), job
    finally:
        short_lease.cli("runs", "cancel", str(run_id))


def test_status_counts_a_queued_job_and_no_local_agents(short_lease: Server, git: Git) -> None:
    """`mlyard status` of a server without local agents (`--agents 0`) while a job waits for a remote one."""
    from mlyard.views import ServerStatusView

    run_id = queue(short_lease, git, "waits", SLOW.format(mark=uuid.uuid4().hex, seconds=1))
    try:
        wait_state(short_lease, run_id, {"running"})  # the run is under way, its job queued: no agent claims it
        status = ServerStatusView.from_dict(json.loads(short_lease.cli("status", "--json").stdout))
        assert status.jobs_queued >= 1 and status.jobs_running == 0, status
        assert status.local_agents == status.local_agents_configured == 0
        [steps] = [pool for pool in status.pools if pool.name == "step-sandboxes"]
        assert steps.ready == steps.limit == 0 and steps.detail == "no local agents (--agents 0)"
    finally:
        short_lease.cli("runs", "cancel", str(run_id))
