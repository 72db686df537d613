"""The platform on each state backend (SQLite, PostgreSQL): a real `mlyard server` started on a database
given to `mlyard init --database-url`, the core loop through the CLI, git and the API, and the
concurrency the issue's reproductions found (parallel manual runs, concurrent creates of one name)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.ci.helpers import logs, make_repo, register, runs_of, wait_runs, wait_state
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow

PIPELINE = """\
trigger: [master]
steps:
- script: echo "built $(Build.SourceBranchName) for $(Build.Reason) by $(Build.RequestedFor)"
  displayName: Build
"""


def together(count: int, call: Any) -> list[Any]:
    """`call(i)` from `count` threads released at once; their results in order."""
    barrier = threading.Barrier(count)

    def one(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_core_loop_user_token_repo_push_run(backend_server: Server, git: Git) -> None:
    srv, tag = backend_server, uuid.uuid4().hex[:6]
    alice, loop = f"alice-{tag}", f"loop-{tag}"
    srv.cli("users", "create", alice)
    scopes = ("--scope", "repo:write", "--scope", "pipelines:run")
    created = srv.cli("tokens", "create", "--user", alice, "--name", "laptop", *scopes, "--json")
    token = json.loads(created.stdout)["token"]
    with srv.client(token) as api:
        assert api.get("/api/v1/me").json()["username"] == alice
        response = api.post("/api/v1/repos", json={"name": loop})
        assert response.status_code == 201, response.text
        assert api.post("/api/v1/repos", json={"name": loop}).status_code == 409
    work = git.cwd / loop
    git("clone", "-q", srv.remote(loop, token=token, user=alice), str(work))
    git.commit({"azure-pipelines.yml": PIPELINE, "README.md": "loop\n"}, "initial", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    with srv.client(token) as api:
        pipeline = {"name": f"{loop}-ci", "repo": loop, "yaml": "azure-pipelines.yml"}
        response = api.post("/api/v1/pipelines", json=pipeline)
        assert response.status_code == 201, response.text

    sha = git.commit({"README.md": "loop 2\n"}, "second", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    with srv.client(token) as api:
        api.post(f"/api/v1/pipelines/{loop}-ci/runs", json={})
    runs = wait_runs(srv, f"{loop}-ci", 2)
    assert sorted(r["reason"] for r in runs) == ["IndividualCI", "Manual"], runs
    for found in runs:
        done = wait_state(srv, found["id"])
        assert done["state"] == "succeeded", logs(srv, done["id"])
        assert done["source_version"] == sha
    ci = next(r for r in runs if r["reason"] == "IndividualCI")
    assert f"built master for IndividualCI by {alice}" in logs(srv, ci["id"])

    listed = json.loads(srv.cli("runs", "list", "--pipeline", f"{loop}-ci", "--json", token=token).stdout)
    assert sorted(r["number"] for r in listed) == [1, 2]
    assert {r["state"] for r in listed} == {"succeeded"}
    shown = json.loads(srv.cli("runs", "show", str(ci["id"]), "--json", token=token).stdout)
    steps = [s["display_name"] for st in shown["stages"] for j in st["jobs"] for s in j["steps"]]
    assert "Build" in steps and shown["state"] == "succeeded"


def test_parallel_manual_runs_of_one_pipeline_all_get_distinct_numbers(backend_server: Server, git: Git) -> None:
    srv, burst = backend_server, f"burst-{uuid.uuid4().hex[:6]}"
    make_repo(srv, git, burst, {"ci.yml": "trigger: none\nsteps:\n- script: echo burst $(Build.BuildId)\n"})
    register(srv, f"{burst}-ci", burst, "ci.yml")

    def post(_: int) -> httpx.Response:
        with srv.client() as api:
            return api.post(f"/api/v1/pipelines/{burst}-ci/runs", json={})

    responses = together(20, post)
    statuses = Counter(r.status_code for r in responses)
    created = [r.json() for r in responses if r.status_code == 201]
    assert statuses == {201: 20}, [r.text for r in responses if r.status_code != 201][:3]
    assert sorted(r["number"] for r in created) == list(range(1, 21))
    assert len(runs_of(srv, f"{burst}-ci")) == 20
    for found in created:
        assert wait_state(srv, found["id"], timeout=120)["state"] == "succeeded", logs(srv, found["id"])


def test_concurrent_creates_of_one_repo_name_answer_one_201_and_409s(backend_server: Server) -> None:
    srv, contested = backend_server, f"contested-{uuid.uuid4().hex[:6]}"

    def post(_: int) -> httpx.Response:
        with srv.client() as api:
            return api.post("/api/v1/repos", json={"name": contested})

    responses = together(30, post)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 29}, [r.text for r in responses if r.status_code not in (201, 409)][:3]
    conflict = next(r for r in responses if r.status_code == 409).json()
    assert conflict["ok"] is False and contested in conflict["error"]
    with srv.client() as api:
        names = [r["name"] for r in api.get("/api/v1/repos").json()]
    assert names.count(contested) == 1


def test_texts_longer_than_a_varchar_run_as_on_sqlite(backend_server: Server, git: Git) -> None:
    """PostgreSQL enforces VARCHAR lengths that SQLite ignores: a long display name left the run queued
    for ever and a push on a branch of more than 255 characters answered HTTP 500, only on PostgreSQL."""
    srv, long = backend_server, f"long-{uuid.uuid4().hex[:6]}"
    title = "Déploiement " + "d" * 300
    yml = f"""trigger: ['*']
stages:
- stage: S
  displayName: {title}
  jobs:
  - job: J
    displayName: {title}
    steps:
    - script: |
        echo "##vso[build.updatebuildnumber]{"b" * 300}"
        mkdir out && echo hi > out/f
      displayName: {title}
    - publish: out
      artifact: {"a" * 128}
"""
    work = make_repo(srv, git, long, {"ci.yml": yml})
    register(srv, f"{long}-ci", long, "ci.yml")
    branch = "/".join(["b" * 200, "c" * 200])  # refs/heads/... is longer than 255 characters
    git("checkout", "-q", "-b", branch, cwd=work)
    git.commit({"x": "1"}, "on a long branch", cwd=work)
    git("push", "-q", "origin", branch, cwd=work)
    (found,) = wait_runs(srv, f"{long}-ci", 1)
    done = wait_state(srv, found["id"])
    assert done["state"] == "succeeded", (done, logs(srv, done["id"]))
    assert done["source_branch"] == f"refs/heads/{branch}" and done["build_number"] == "b" * 300
    assert done["stages"][0]["display_name"] == title and done["artifacts"] == ["a" * 128]


def test_concurrent_pushes_each_get_a_run_with_a_distinct_number(backend_server: Server, git: Git) -> None:
    srv, pushes = backend_server, f"pushes-{uuid.uuid4().hex[:6]}"
    no_work = "trigger: ['*']\njobs:\n- job: J\n  condition: false\n  steps:\n  - script: echo pushed\n"  # runs only
    work = make_repo(srv, git, pushes, {"ci.yml": no_work})
    register(srv, f"{pushes}-ci", pushes, "ci.yml")
    remote = srv.remote(pushes)

    def push(i: int) -> int:
        return git("push", "-q", remote, f"HEAD:refs/heads/topic-{i}", cwd=work, check=False).returncode

    assert together(20, push) == [0] * 20
    runs = wait_runs(srv, f"{pushes}-ci", 20, timeout=20)
    with srv.client() as api:  # what is left of them: the agents (maybe the session's server's) are for other tests
        for found in runs:
            api.post(f"/api/v1/runs/{found['id']}/cancel")  # 409 when it already finished
    assert sorted(r["source_branch"] for r in runs) == sorted(f"refs/heads/topic-{i}" for i in range(20))
    assert sorted(r["number"] for r in runs) == list(range(1, 21))
