"""Request body limits on a real server: 413 at once for a declared size, after the limit for a streamed
body, without the server's memory growing by the body; artifacts streamed to disk under their own limit;
git pushes under theirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlyard.client import Client
from mlyard.errors import PayloadTooLarge
from tests.agent.test_remote_agent import Agent, agent_token
from tests.ci.helpers import job, logs, make_repo, register, run, wait_state
from tests.conftest import TLS, Git, Server, make_git, start_server

pytestmark = pytest.mark.slow

MiB = 1024**2


def chunks(total_mib: int) -> Iterator[bytes]:
    """A streamed body (sent chunked): the test never holds it in memory."""
    block = b"x" * MiB
    for _ in range(total_mib):
        yield block


def test_large_unauthenticated_post_is_refused_without_growing_the_server(server: Server) -> None:
    """The reproduction: an unauthenticated 300 MB POST took the server to ~1 GB before its 401."""
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    before = process.memory_info().rss
    with httpx.Client(base_url=server.url, timeout=60, verify=TLS) as anonymous:
        streamed = anonymous.post("/api/v1/repos", content=chunks(64), headers={"Content-Type": "application/json"})
        declared = anonymous.post("/api/v1/repos", content=chunks(300), headers={"Content-Length": str(300 * MiB)})
    grown = process.memory_info().rss - before
    for response in (streamed, declared):
        assert response.status_code == 413
        assert response.json() == {
            "ok": False,
            "status": 413,
            "error": "request body too large: an API request may have at most 1 MiB (1048576 bytes); the server's "
            "administrator can change it (`max_request_bytes` in settings.json)",
            "errors": [response.json()["error"]],
        }
    assert grown < 32 * MiB, f"the server grew by {grown / MiB:.0f} MiB"
    with server.client() as api:  # and it still answers
        assert api.get("/api/v1/me").status_code == 200


def test_the_client_that_sends_its_whole_body_first_gets_the_413(server: Server) -> None:
    """mlyard's client (http.client) reads the answer only after sending: the server drains the rest."""
    with Client(server.url, server.token) as api:
        with pytest.raises(PayloadTooLarge, match=r"an API request may have at most 1 MiB"):
            api.post("/api/v1/repos", {"name": "too-large", "padding": "x" * 8 * MiB})
        assert api.get("/api/v1/me")["username"] == "admin"  # the same connection still works


def test_a_body_under_the_limit_is_read_as_before(server: Server) -> None:
    with server.client() as api:
        response = api.post("/api/v1/repos", json={"name": "limits-ok", "unused": "x" * (MiB - 100)})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with 1 MiB limits for artifacts and pushes, without agents of its own (the tests claim jobs
    themselves, or start a `mlyard agent`)."""
    srv = start_server(tmp_path_factory.mktemp("limited"), "--agents", "0", max_artifact_bytes=MiB, max_push_bytes=MiB)
    yield srv
    srv.stop()


def claim_job(server: Server, git: Git, repo: str) -> dict[str, object]:
    """Run a one-job pipeline and claim its job as an agent would: the job's id, run and token."""
    make_repo(server, git, repo, {"ci.yml": "trigger: none\nsteps:\n- bash: echo hi\n"})
    register(server, repo, repo, "ci.yml")
    queued = run(server, repo)
    with server.client() as api:
        agent = api.post("/api/v1/tokens", json={"name": f"{repo}-agent", "scopes": ["agent"]}).json()["token"]
    with server.client(agent) as api:
        claimed = api.post("/api/v1/agent/claim", json={"agent": "test-agent", "wait": 20})
    assert claimed.status_code == 200, claimed.text
    spec = claimed.json()
    assert spec["run_id"] == queued["id"]
    return spec


def test_artifact_uploads_stream_to_disk_under_their_limit(limited: Server, tmp_path: Path) -> None:
    spec = claim_job(limited, make_git(tmp_path), "limits-artifacts")
    base = f"/api/v1/agent/jobs/{spec['job_id']}/artifacts"
    payload = os.urandom(MiB // 2)
    with limited.client(str(spec["access_token"])) as agent:
        stored = agent.put(f"{base}/small", content=payload, headers={"Content-Type": "application/gzip"})
        assert stored.status_code == 200, stored.text
        assert stored.json() == {"name": "small", "size": len(payload)}
        declared = agent.put(f"{base}/declared", content=os.urandom(2 * MiB))
        streamed = agent.put(f"{base}/streamed", content=chunks(8))
        downloaded = agent.get(f"{base}/small")
    expected = (
        "request body too large: an artifact upload may have at most 1 MiB (1048576 bytes); the server's "
        "administrator can change it (`max_artifact_bytes` in settings.json)"
    )
    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.json()["error"] == expected
    assert downloaded.content == payload
    with limited.client() as api:
        listed = api.get(f"/api/v1/runs/{spec['run_id']}/artifacts").json()
    assert [(a["name"], a["size"]) for a in listed] == [("small", len(payload))]
    folder = limited.home / "runs" / str(spec["run_id"]) / "artifacts"
    assert sorted(p.name for p in folder.iterdir()) == ["small.tar.gz"]  # no part file left behind


def test_git_push_over_its_limit_is_refused_and_a_small_one_works(limited: Server, tmp_path: Path) -> None:
    git = make_git(tmp_path)
    work = make_repo(limited, git, "limits-push", {"README.md": "small push\n"})
    (work / "blob.bin").write_bytes(os.urandom(3 * MiB))  # random: the pack cannot compress it
    git("add", "blob.bin", cwd=work)
    git("commit", "-q", "-m", "large", cwd=work)
    pushed = git("push", "origin", "master", cwd=work, check=False)
    assert pushed.returncode != 0
    assert "413" in pushed.stderr
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit({"more.txt": "still small\n"}, "small again", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)


PUBLISH_LARGE = """trigger: none
steps:
- bash: head -c 3145728 /dev/urandom > big.bin
- publish: big.bin
  artifact: big
"""


def test_an_agent_publishing_an_artifact_over_the_limit_fails_its_step_with_the_limit(
    limited: Server, tmp_path: Path
) -> None:
    agent = Agent(limited, agent_token(limited), "limits-agent", tmp_path / "agent" / "work")
    agent.work.parent.mkdir(parents=True)
    agent.start()
    try:
        git = make_git(tmp_path)
        make_repo(limited, git, "limits-agent", {"ci.yml": PUBLISH_LARGE})
        register(limited, "limits-agent", "limits-agent", "ci.yml")
        done = wait_state(limited, run(limited, "limits-agent")["id"])
        assert done["state"] == "failed"
        assert job(done, "Job")["agent"] == "limits-agent"
        text = logs(limited, done["id"])
        assert "an artifact upload may have at most 1 MiB (1048576 bytes)" in text
        assert "lost the connection" not in text  # the agent got the answer, not a reset
    finally:
        agent.kill()
