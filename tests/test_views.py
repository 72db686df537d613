"""The typed views of mlyard.views read the API's real answers and give them back unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlyard.client import Client
from mlyard.protocol import SUCCESSFUL_STATES, State
from mlyard.views import (
    ArtifactView,
    AuditEntry,
    ConnectionView,
    DeploymentView,
    EnvironmentView,
    MeView,
    PipelineView,
    PushEvent,
    RepoView,
    RunSummary,
    RunTests,
    RunView,
    TokenView,
    UserView,
    VariableGroupView,
    VariableView,
    View,
    WorkspaceJobView,
)
from tests.ci.helpers import make_repo, wait_runs, wait_state
from tests.conftest import Git, Server

YAML = """trigger: none
stages:
- stage: build
  jobs:
  - job: compile
    steps:
    - script: |
        mkdir -p out && echo compiled > out/a.txt
        echo '<testsuite name="s" tests="2" failures="1"><testcase classname="c" name="ok"/>' > TEST-a.xml
        echo '<testcase classname="c" name="bad"><failure message="boom"/></testcase></testsuite>' >> TEST-a.xml
      displayName: compile it
    - publish: out
      artifact: out
    - task: PublishTestResults@2
      inputs:
        testResultsFiles: TEST-*.xml
- stage: test
  jobs:
  - job: check
    steps:
    - script: echo checked
"""


def test_from_dict_keeps_unknown_keys_and_states() -> None:
    doc = {"id": 3, "state": "paused", "pipeline": "p", "from_a_newer_server": [1]}
    run = RunSummary.from_dict(doc)
    assert run.id == 3 and run.state == "paused" and run.pipeline == "p" and run.errors == []
    assert run.to_dict()["from_a_newer_server"] == [1] and run.to_dict()["state"] == "paused"
    assert RunSummary.from_dict({"state": "succeeded"}).state is State.SUCCEEDED


def test_a_run_tree_is_typed() -> None:
    doc = {"id": 1, "state": "running", "stages": [
        {"name": "s", "state": "running", "jobs": [{"name": "j", "state": "queued", "steps": [{"state": "skipped"}]}]}
    ]}  # fmt: skip
    run = RunView.from_dict(doc)
    assert run.stages[0].jobs[0].steps[0].state is State.SKIPPED and run.jobs[0].name == "j"


def test_a_deployment_view_knows_every_key_of_the_servers_document() -> None:
    from datetime import UTC, datetime

    from mlyard.db.tables import Deployment
    from mlyard.services.deployments import deployment_dict

    now = datetime.now(UTC)
    row = Deployment(name="m", environment="dev", model="m", version="1", model_uri="models:/m/1", target="local",
                     cpu=1.0, memory=2.0, port=5001, backend_port=None, pid=7, url="http://127.0.0.1:5001",
                     state="running", message="", log_path="", requested_by="admin", created_at=now, updated_at=now)
    same(DeploymentView, deployment_dict(row))


def same(view: type[View], doc: dict[str, Any]) -> None:
    """from_dict then to_dict gives the very document back, keys in the same order (the CLI prints it)."""
    back = view.from_dict(doc).to_dict()
    assert back == doc and list(back) == list(doc), view.__name__
    assert not view.from_dict(doc).extra, f"{view.__name__} does not know {sorted(view.from_dict(doc).extra)}"


@pytest.mark.slow
def test_views_round_trip_the_servers_answers(server: Server, git: Git) -> None:
    work = make_repo(server, git, "views-rt", {"azure-pipelines.yml": YAML, "broken.yml": YAML})
    with Client(server.url, server.token) as api:
        for name, yaml in (("views-rt", "azure-pipelines.yml"), ("views-broken", "broken.yml")):
            api.pipelines.create(name, repo="views-rt", yaml=yaml, folder="views")
        git.commit({"broken.yml": "steps: [\n"}, "break it", cwd=work)
        git("push", "-q", "origin", "master", cwd=work)
        wait_runs(server, "views-broken", 1)
        queued = api.pipelines.run("views-rt", {})
        assert queued.state == State.QUEUED and queued.id
        wait_state(server, queued.id)
        broken = api.runs.list(pipeline="views-broken")[0]  # the push of invalid YAML records a failed run
        run = api.runs.get(queued.id)
        assert [s.name for s in run.stages] == ["build", "test"] and run.state in SUCCESSFUL_STATES
        assert run.tests is not None and (run.tests.passed, run.tests.failed) == (1, 1) and run.artifacts == ["out"]
        same(RunTests, api.get(f"/api/v1/runs/{queued.id}/tests"))
        (artifact,) = api.get(f"/api/v1/runs/{queued.id}/artifacts")
        same(ArtifactView, artifact)
        assert api.runs.get(broken.id).errors  # file:line:col of the broken YAML
        same(RunView, api.get(f"/api/v1/runs/{queued.id}"))
        same(RunView, api.get(f"/api/v1/runs/{broken.id}"))
        for doc in api.get("/api/v1/runs", pipeline="views-rt"):
            same(RunSummary, doc)
        for doc in api.get("/api/v1/pipelines", folder="views"):
            same(PipelineView, doc)
        same(PipelineView, api.get("/api/v1/pipelines/views-rt"))
        same(RepoView, api.get("/api/v1/repos/views-rt"))
        for doc in api.get("/api/v1/repos"):
            same(RepoView, doc)
        for doc in api.get("/api/v1/tokens"):
            same(TokenView, doc)
        for doc in api.get("/api/v1/users"):
            same(UserView, doc)
        same(MeView, api.get("/api/v1/me"))
        for doc in api.get("/api/v1/environments"):
            same(EnvironmentView, doc)
        same(EnvironmentView, api.get("/api/v1/environments/dev"))
        same(EnvironmentView, api.patch("/api/v1/environments/dev", {}))  # changes nothing
        for doc in api.get("/api/v1/jobs"):
            same(WorkspaceJobView, doc)
        connection = {"name": "views-rt", "type": "generic", "settings": {"a": "1"}, "secrets": {"b": "2"}}
        same(ConnectionView, api.post("/api/v1/connections", connection))
        same(ConnectionView, api.get("/api/v1/connections/views-rt"))
        group = {"name": "views-rt", "variables": {"a": "1"}, "secrets": {"b": "2"}}
        same(VariableGroupView, api.post("/api/v1/variable-groups", group))
        same(VariableGroupView, api.delete("/api/v1/variable-groups/views-rt"))
        same(VariableGroupView, api.post("/api/v1/environments/test/rotate-token"))
        assert api.connections.delete("views-rt").secret_keys == ["b"]
        same(VariableView, api.request("PUT", "/api/v1/pipelines/views-rt/variables/V", json={"value": "1"}))
        same(VariableView, api.delete("/api/v1/pipelines/views-rt/variables/V"))
        for doc in api.get("/api/v1/repos/views-rt/events"):
            same(PushEvent, doc)
        for doc in api.get("/api/v1/audit", limit=20):
            same(AuditEntry, doc)
        assert api.repos.events("views-rt")[-1].kind == "update"
        assert [e.action for e in api.audit(action="run.queued", limit=1)] == ["run.queued"]
        created = api.tokens.create("views-rt", ["repo:read"])
        assert created.token and created.to_dict()["token"] == created.token
        assert api.tokens.revoke(str(created.id)).state == "revoked"

    # the CLI prints the same documents
    assert json.loads(server.cli("runs", "tests", str(queued.id), "--json").stdout) == api.get(
        f"/api/v1/runs/{queued.id}/tests"
    )
    shown = server.cli("runs", "tests", str(queued.id)).stdout
    assert "2 tests: 1 passed, 1 failed, 0 skipped" in shown and "c.bad: boom" in shown
    assert "tests: 1 passed, 1 failed, 0 skipped" in server.cli("runs", "show", str(queued.id)).stdout
    download = ("--download", str(git.cwd / "dl"), "--json")
    listed = json.loads(server.cli("runs", "artifacts", str(queued.id), *download).stdout)
    assert [a["name"] for a in listed] == ["out"] and (git.cwd / "dl" / "out" / "a.txt").read_text() == "compiled\n"


def test_views_are_typed_keyword_records() -> None:
    a, b = RunSummary(id=1, errors=["x"]), RunSummary(id=1, errors=["x"])
    assert a == b and a != RunSummary(id=2) and a.state is State.QUEUED and "id=1" in repr(a)
    assert RunSummary().errors is not RunSummary().errors  # a fresh list each time
    assert RunView(id=1).stages == [] and RunView(id=1).tests is None
    assert list(RunView().to_dict())[:12] == list(RunSummary().to_dict())  # a subclass's fields come after
    with pytest.raises(TypeError):
        RunSummary(nope=1)
