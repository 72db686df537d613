"""Issue 10's reproduction against a real server and its local agents: a non-admin user with `repo:write`
pushes a pipeline whose step tries to read the server's secrets; and the server and `mlyard agent`
refuse to run steps where bubblewrap is unavailable, unless started with --unsandboxed-steps."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlyard.views import ServerStatusView
from tests.ci.helpers import logs, wait_runs, wait_state
from tests.conftest import TLS, Git, Server, local_agents, mlyard, new_server, start_server

pytestmark = pytest.mark.slow
SECRET = "server-environment-secret-93ab"

STEAL = """trigger:
  branches:
    include: [master]
steps:
- script: |
    cat {home}/cli.json || echo "no cli.json"
    base64 -w0 {home}/secret.key || echo "no secret.key"
    head -c 15 {home}/mlyard.db || echo "no mlyard.db"
    ls {home}/agents/*/work || echo "no agents"
    cat {other} || echo "no other job"
    tr '\\0' '\\n' < /proc/{pid}/environ || echo "no server environment"
    env
"""


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of the module's own with a secret in its environment: a new interpreter (cold), whose
    /proc/<pid>/environ (what a step tries to read) holds the secret, as a real server's does."""
    server = start_server(tmp_path_factory.mktemp("victim"), env={"AWS_SECRET_ACCESS_KEY": SECRET}, cold=True)
    yield server
    server.stop()


def _user_token(server: Server, username: str, scopes: list[str]) -> str:
    with server.client() as api:
        api.post("/api/v1/users", json={"username": username}).raise_for_status()
        created = api.post("/api/v1/tokens", json={"name": f"{username}-t", "scopes": scopes, "user": username})
        created.raise_for_status()
        return str(created.json()["token"])


def test_a_pushing_user_cannot_reach_the_servers_secrets(victim: Server, git: Git) -> None:
    home = victim.home
    other = home / "agents" / "2" / "work" / "job1-other" / "s" / "model.txt"  # another job's work directory
    other.parent.mkdir(parents=True)
    other.write_text(SECRET)
    assert victim.proc is not None
    token = _user_token(victim, "mallory", ["repo:write"])
    with victim.client(token) as api:
        api.post("/api/v1/repos", json={"name": "steal"}).raise_for_status()
    work = git.cwd / "steal"
    git("clone", "-q", victim.remote("steal", token=token, user="mallory"), str(work))
    git.commit({"ci.yml": STEAL.format(home=home, other=other, pid=victim.proc.pid)}, "steal", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    with victim.client(token) as api:
        api.post("/api/v1/pipelines", json={"name": "steal-ci", "repo": "steal", "yaml": "ci.yml"}).raise_for_status()
    git.commit({"again.txt": "x"}, "again", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    [queued] = wait_runs(victim, "steal-ci", 1)
    done = wait_state(victim, queued["id"], timeout=90)
    text = logs(victim, done["id"])
    assert done["state"] == "succeeded", text
    key = (home / "secret.key").read_bytes()
    assert victim.token not in text and SECRET not in text
    assert base64.b64encode(key).decode() not in text and key.decode("latin-1") not in text
    assert "SQLite format" not in text
    for missing in ("no cli.json", "no secret.key", "no mlyard.db", "no agents", "no other job",
                    "no server environment"):  # fmt: skip
        assert missing in text
    assert "MLYARD_HOME=" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "SYSTEM_COLLECTIONURI=" in text  # what a step is given to reach the server stays


def _agents(server: Server) -> list[psutil.Process]:
    """The live local agent processes of the server."""
    assert server.proc is not None
    return local_agents(server.proc.pid)


def test_local_agents_are_processes_without_the_servers_environment(victim: Server) -> None:
    agents = _agents(victim)
    assert len(agents) == 2
    for agent in agents:
        env = agent.environ()
        assert "MLYARD_HOME" not in env and "AWS_SECRET_ACCESS_KEY" not in env
        assert victim.token not in " ".join(agent.cmdline())
    agents[0].kill()  # a local agent that dies is started again
    deadline = time.monotonic() + 20
    while {agent.pid for agent in _agents(victim)} & {agents[0].pid} or len(_agents(victim)) < 2:
        assert time.monotonic() < deadline, "the dead local agent was not restarted"
        time.sleep(0.1)


def marked(home: Path) -> list[int]:
    """The live processes that carry the mark of the server of `home` (MLYARD_AGENT_MARK=home: its MLflow zygote
    and servers, its local agents), which a restarted server would kill as orphans."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MLYARD_AGENT_MARK") == str(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def test_no_bubblewrap_no_local_agents_unless_unsandboxed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = new_server(tmp_path, "--unsandboxed-steps")
    home, port = server.home, server.port
    monkeypatch.setenv("MLYARD_BWRAP", str(tmp_path / "no-bwrap"))
    # (with Python's list of imports, in a process of its own)
    refused = mlyard("server", "--port", str(port), home=home, check=False, timeout=60,
                     env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert "the server does not start its local agents: steps cannot be isolated: bubblewrap" in refused.stderr
    # refused before the server's imports (seconds of CPU), and the MLflow zygote it started first is gone with it
    imported = {line.rsplit("|", 1)[-1].strip() for line in refused.stderr.splitlines() if "import time:" in line}
    assert "mlyard.cli.main" in imported and "mlyard.app" not in imported and "fastapi" not in imported
    assert marked(home) == []
    assert "is not installed" in refused.stderr and "--unsandboxed-steps" in refused.stderr
    agent = mlyard("agent", "--url", f"http://127.0.0.1:{port}", "--token", "t", home=home, check=False)
    assert agent.returncode == 1 and "steps cannot be isolated" in agent.stderr
    assert "--unsandboxed-steps" in agent.stderr and "Traceback" not in agent.stderr + refused.stderr
    server.start()
    try:
        assert httpx.get(f"{server.url}/health", timeout=5, verify=TLS).status_code == 200
        status = ServerStatusView.from_dict(json.loads(server.cli("status", "--json").stdout))
        pools = {pool.name: pool for pool in status.pools}
        for name in ("step-sandboxes", "job-sandboxes"):  # a warm sandbox is a sandbox: none unsandboxed
            assert pools[name].limit == 0 and pools[name].detail == "none: steps run unsandboxed (--unsandboxed-steps)"
    finally:
        server.stop()
    assert "steps are NOT sandboxed" in server.log.read_text()
