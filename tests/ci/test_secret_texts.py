"""Secrets stay out of everything a step can make the server store, not only logs: build number, build
tags, output variables, test results, step issues, the job message and artifact names. Checked through
the API, `runs show --json` and every row of the database, for a real run on a local agent and for an
agent that does not mask (the server masks what it receives with the secrets it gave the job)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.protocol import MAX_BATCHED_REPORTS
from tests.agent.test_remote_agent import agent_token
from tests.ci.helpers import job, logs, make_repo, register, run, wait_state
from tests.conftest import Git, Server, start_server

pytestmark = pytest.mark.slow

PIPELINE = """trigger: none
jobs:
- job: leak
  steps:
  - bash: |
      echo "##vso[build.updatebuildnumber]$DB"
      echo "##vso[build.addbuildtag]$DB"
      echo "##vso[task.setvariable variable=out;isOutput=true]$DB"
      printf '<testsuite><testcase classname="c_%s" name="t_%s"><failure message="m %s"/></testcase></testsuite>' \\
        "$DB" "$DB" "$DB" > TEST-leak.xml
    name: set
    displayName: set $(DB_PASSWORD)
    env:
      DB: $(DB_PASSWORD)
  - task: PublishTestResults@2
    inputs:
      testResultsFiles: TEST-*.xml
      testRunTitle: title $(DB_PASSWORD)
  - publish: TEST-leak.xml
    artifact: a-$(DB_PASSWORD)
    continueOnError: true
"""


def new_secret() -> str:
    return f"pw-{uuid.uuid4().hex[:12]}"


def with_secret(server: Server, git: Git, name: str, yaml: str, secret: str) -> None:
    make_repo(server, git, name, {"ci.yml": yaml})
    register(server, name, name, "ci.yml")
    with server.client() as api:
        response = api.put(f"/api/v1/pipelines/{name}/variables/DB_PASSWORD", json={"value": secret, "secret": True})
        assert response.status_code == 200, response.text


def assert_nowhere(server: Server, run_id: int, secret: str) -> dict:
    """The secret is in no answer about the run and in no row of the database; returns the run."""
    with server.client() as api:
        doc = api.get(f"/api/v1/runs/{run_id}").json()
        answers = [api.get(f"/api/v1/runs/{run_id}/{part}").text for part in ("tests", "artifacts", "logs")]
    shown = server.cli("runs", "show", str(run_id), "--json").stdout
    for text in (json.dumps(doc), shown, *answers):
        assert secret not in text
    db = sqlite3.connect(server.home / "mlyard.db")
    try:
        tables = [name for (name,) in db.execute("select name from sqlite_master where type = 'table'")]
        leaked = [t for t in tables for row in db.execute(f'select * from "{t}"') if secret in repr(row)]
    finally:
        db.close()
    assert leaked == []
    return dict(json.loads(shown))


def test_a_step_cannot_store_a_secret_in_build_number_tags_outputs_tests_or_artifact_names(
    server: Server, git: Git
) -> None:
    secret = new_secret()
    with_secret(server, git, "secret-texts", PIPELINE, secret)
    done = wait_state(server, run(server, "secret-texts")["id"])
    assert done["state"] == "succeededWithIssues", logs(server, done["id"])
    shown = assert_nowhere(server, done["id"], secret)
    assert shown["build_number"] == "***"
    assert "***" in shown["tags"]
    assert job(shown, "leak")["outputs"] == {"set.out": "***"}
    with server.client() as api:
        tests = api.get(f"/api/v1/runs/{done['id']}/tests").json()["tests"]
    assert tests["failures"] == [{"name": "t_***", "classname": "c_***", "message": "m ***"}], tests
    assert "the artifact name contains a secret value" in logs(server, done["id"])


@pytest.fixture
def agentless(tmp_path: Path) -> Iterator[Server]:
    """A server without local agents: the test plays an agent that does not mask."""
    srv = start_server(tmp_path, "--agents", "0")
    yield srv
    srv.stop()


def test_the_server_masks_what_an_agent_that_does_not_mask_sends(agentless: Server, git: Git) -> None:
    server, secret = agentless, new_secret()
    with_secret(server, git, "raw-agent", "trigger: none\nsteps:\n- bash: echo $(DB_PASSWORD)\n  name: s\n", secret)
    run_id = run(server, "raw-agent")["id"]
    with server.client(agent_token(server)) as agent:
        claimed = agent.post("/api/v1/agent/claim", json={"agent": "raw-1", "wait": 20})
        assert claimed.status_code == 200, claimed.text
    spec = claimed.json()
    assert spec["secrets"]["DB_PASSWORD"] == secret
    step_id = spec["steps"][0]["id"]
    with server.client(spec["access_token"]) as api:
        prefix = f"/api/v1/agent/jobs/{spec['job_id']}"
        issue = {"type": "error", "message": f"failed with {secret}"}
        outcome = {
            "result": "failed", "outputs": {"s.out": f"v={secret}"}, "secret_outputs": {"s.key": "k-7781"},
            "tags": [secret, "release"], "build_number": f"1.0-{secret}", "message": f"step failed: {secret}",
        }  # fmt: skip
        finished = {"kind": "step", "step_id": step_id, "state": "completed", "result": "failed", "issues": [issue]}
        too_many = [{"kind": "logs", "step_id": step_id, "lines": [[2, "x"]]}] * (MAX_BATCHED_REPORTS + 1)
        refused = [
            api.post(f"{prefix}/reports", json={"reports": too_many}),
            api.post(f"{prefix}/reports", json={"reports": []}),
            api.post(f"{prefix}/reports", json={"reports": [{"kind": "tests", "title": "t"}]}),
            api.post(f"{prefix}/logs", json={"step_id": step_id, "lines": [["not a time", "x"]]}),  # not a 500
            api.post(f"{prefix}/reports", json={"reports": [{"kind": "logs", "step_id": None, "lines": [[1]]}]}),
        ]
        reports = [
            api.post(f"{prefix}/steps/{step_id}", json={"state": "running"}),
            api.post(f"{prefix}/logs", json={"step_id": step_id, "lines": [[0, f"printed {secret}"]]}),
            # what an agent sends in one request when reports queued up (mlyard.agent.http_reporter)
            api.post(f"{prefix}/reports", json={"reports": [
                {"kind": "logs", "step_id": step_id, "lines": [[1, f"batched {secret}"]]}, finished]}),
            api.post(f"{prefix}/tests", json={"title": secret, "failures": [{"name": secret, "message": secret}]}),
            api.post(f"{prefix}/complete", json=outcome),
        ]  # fmt: skip
    assert [response.status_code for response in refused] == [422] * 5, [r.text for r in refused]
    assert [response.status_code for response in reports] == [200] * 5, [r.text for r in reports]
    assert reports[2].json() == {"reports": 2, "written": 1}
    shown = assert_nowhere(server, run_id, secret)
    assert shown["build_number"] == "1.0-***"
    assert sorted(shown["tags"]) == ["***", "release"]
    assert job(shown, "Job")["outputs"] == {"s.out": "v=***"}
    assert job(shown, "Job")["message"] == "step failed: ***"
    step = job(shown, "Job")["steps"][0]
    assert (step["state"], step["issues"]) == ("failed", [{"type": "error", "message": "failed with ***"}]), step
    text = logs(server, run_id)
    assert text.index("printed ***") < text.index("batched ***"), text
