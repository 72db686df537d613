"""No run lost, on a real server (issue 10, points 2 and 6): concurrent pushes and manual runs over HTTP,
a crash between recording a push and triggering it, and a push with broken YAML seen by API and CLI."""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mlyard.services.events import EXIT_AFTER_INGEST
from tests.ci.helpers import make_repo, register, runs_of, show, wait_runs
from tests.conftest import TLS, Git, Server, start_server

pytestmark = pytest.mark.slow
PIPELINE = "trigger:\n  branches:\n    include: ['*']\nsteps:\n- script: echo hi\n"
# The runs of the concurrency tests are what is checked, not their work: their one job is skipped (no agent time).
NO_WORK = "jobs:\n- job: J\n  condition: false\n  steps:\n  - script: echo hi\n"
PUSHED = "trigger:\n  branches:\n    include: ['*']\n" + NO_WORK
MANUAL = "trigger: none\n" + NO_WORK
BROKEN = "trigger: [master]\nsteps:\n- script: echo hi\n  bogus: [\n"


def cancel_all(server: Server, pipeline: str) -> None:
    """Cancel what is left of the runs, so that the shared server's agents are free for other tests."""
    with server.client() as api:
        for found in runs_of(server, pipeline):
            api.post(f"/api/v1/runs/{found['id']}/cancel")  # 409 when it already finished


def test_twenty_concurrent_pushes_get_twenty_runs(server: Server, git: Git) -> None:
    work = make_repo(server, git, "conc-push", {"ci.yml": "trigger: none\nsteps:\n- script: echo hi\n"})
    register(server, "conc-push-ci", "conc-push", "ci.yml")
    for index in range(20):
        git("checkout", "-q", "-b", f"b{index}", "master", cwd=work)
        git.commit({"ci.yml": PUSHED, "f.txt": str(index)}, f"change {index}", cwd=work)
    with ThreadPoolExecutor(max_workers=20) as pool:
        pushed = list(pool.map(lambda i: git("push", "-q", "origin", f"b{i}", cwd=work, check=False), range(20)))
    assert [p.returncode for p in pushed] == [0] * 20, [p.stderr for p in pushed if p.returncode]
    found = wait_runs(server, "conc-push-ci", 20, timeout=120)
    cancel_all(server, "conc-push-ci")
    assert sorted(r["number"] for r in found) == list(range(1, 21))


def test_fifty_parallel_manual_runs_all_answer_201(server: Server, git: Git) -> None:
    make_repo(server, git, "conc-manual", {"ci.yml": MANUAL})
    register(server, "conc-manual-ci", "conc-manual", "ci.yml")

    def queue(_: int) -> tuple[int, int]:
        with server.client() as api:
            response = api.post("/api/v1/pipelines/conc-manual-ci/runs", json={})
        return response.status_code, response.json().get("number", 0)

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(queue, range(50)))
    cancel_all(server, "conc-manual-ci")
    assert [status for status, _ in answers] == [201] * 50
    assert sorted(number for _, number in answers) == list(range(1, 51))


def test_a_crash_between_recording_and_triggering_loses_no_run(tmp_path: Path, git: Git) -> None:
    # The test hook: the server exits right after recording a push (the run is queued, never run: no agents).
    srv = start_server(tmp_path / "crash", "--agents", "0", env={EXIT_AFTER_INGEST: "1"})
    try:
        with srv.client() as api:
            assert api.post("/api/v1/repos", json={"name": "crash"}).status_code == 201
        register(srv, "crash-ci", "crash", "ci.yml")  # on the empty repo: its first push is the one recorded
        work = git.cwd / "crash"
        git("clone", "-q", srv.remote("crash"), str(work))
        sha = git.commit({"ci.yml": PIPELINE}, "pushed as the server dies", cwd=work)
        git("push", "-q", "origin", "master", cwd=work, check=False)
        assert srv.proc is not None and srv.proc.wait(timeout=60) == 137
        srv.env.pop(EXIT_AFTER_INGEST)
        srv.start()  # no hook now: the pending event is triggered on start
        found = wait_runs(srv, "crash-ci", 1, timeout=60)
        assert [r["source_version"] for r in found] == [sha]
        srv.stop()
        srv.start()  # and never again
        assert show(srv, found[0]["id"])["source_version"] == sha
        assert [r["id"] for r in runs_of(srv, "crash-ci")] == [found[0]["id"]]
        assert git("push", "-q", "origin", "master", cwd=work).returncode == 0  # "up to date": nothing lost
    finally:
        srv.stop()


def test_a_push_with_broken_yaml_shows_a_failed_run_with_the_errors(server: Server, git: Git) -> None:
    work = make_repo(server, git, "broken-e2e", {"ci.yml": PIPELINE})
    register(server, "broken-e2e-ci", "broken-e2e", "ci.yml")
    git.commit({"ci.yml": BROKEN}, "break the pipeline", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    (listed,) = wait_runs(server, "broken-e2e-ci", 1)
    assert listed["state"] == "failed" and listed["errors"][0].startswith("ci.yml:5:1: invalid YAML")
    doc = show(server, listed["id"])
    assert doc["errors"] == listed["errors"] and doc["message"].startswith("the pipeline is invalid:\nci.yml:5:1: ")
    shown = server.cli("runs", "show", str(listed["id"])).stdout
    assert "failed" in shown and "ci.yml:5:1: invalid YAML" in shown
    table = server.cli("runs", "list", "--pipeline", "broken-e2e-ci").stdout
    assert "ERROR" in table and "ci.yml:5:1" in table
    with httpx.Client(base_url=server.url, timeout=60, verify=TLS) as web:  # a browser: signed in with a cookie
        assert web.post("/login", data={"token": server.token, "next": "/"}).status_code == 303
        page = web.get(f"/runs/{listed['id']}")
    assert page.status_code == 200 and "The pipeline is invalid" in page.text
    assert html.escape(listed["errors"][0], quote=False) in page.text
