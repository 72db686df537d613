"""Model CI end to end: the promote-model pipeline of a created demo project tests the version in
Staging and promotes it only when it passes; otherwise it stays in Staging and the run fails."""

from __future__ import annotations

import json
import time

import pytest

from tests.ci.helpers import logs, runs_of, wait_state
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow
MODEL = "ci-model"


def newest_run(server: Server, pipeline: str, count: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(server, pipeline)
        if len(runs) >= count:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"{pipeline}: fewer than {count} runs")


def versions(server: Server) -> dict[str, dict]:
    doc = json.loads(server.cli("models", "show", MODEL, "--json").stdout)
    return {str(v["version"]): v for v in doc["versions"]}


def test_model_ci_promotes_only_a_passing_staging_version(server: Server, git: Git) -> None:
    server.cli("create", MODEL, "--env", "dev", "--demo", "--follow")
    first_ci = newest_run(server, f"{MODEL}-promote-model", 1)
    deploy = newest_run(server, f"{MODEL}-deploy-code", 1)
    server.cli("runs", "permit", str(deploy["id"]))
    server.cli("runs", "permit", str(first_ci["id"]))
    nothing = wait_state(server, first_ci["id"], timeout=120)
    assert nothing["state"] == "succeededWithIssues"
    assert "no model version in Staging: nothing to promote" in logs(server, first_ci["id"])
    assert wait_state(server, deploy["id"], timeout=120)["state"] == "succeeded"

    server.cli("jobs", "run", "--env", "dev", "--app", MODEL, "train")
    server.cli("models", "stage", MODEL, "1", "Staging")
    git("clone", "-q", server.remote(MODEL), "w")
    work = git.cwd / "w"
    sha = git.commit({"README.md": "release v1\n"}, "release v1", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    passed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 2)["id"], timeout=240)
    assert passed["state"] == "succeeded", logs(server, passed["id"])
    assert passed["tests"]["failed"] == 0 and passed["tests"]["passed"] >= 3
    v1 = versions(server)["1"]
    assert v1["stage"] == "Production" and "production" in v1["aliases"]
    assert v1["tags"]["git_commit"] == sha and v1["tags"]["test_status"] == "passed"
    assert v1["tags"]["git_branch"] == "refs/heads/master" and v1["tags"]["run_url"].endswith(f"/runs/{passed['id']}")

    # An impossible gate: version 2 stays in Staging and the run fails naming the metric.
    git.commit({"mlops/model-gates.yml": "metrics:\n  accuracy:\n    min: 0.9999\n"}, "impossible gate", cwd=work)
    server.cli("jobs", "run", "--env", "dev", "--app", MODEL, "train")
    server.cli("models", "stage", MODEL, "2", "Staging")
    git("push", "-q", "origin", "master", cwd=work)
    failed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 3)["id"], timeout=240)
    assert failed["state"] == "failed"
    text = logs(server, failed["id"])
    assert "accuracy" in text and "model gate failed" in text
    after = versions(server)
    assert after["2"]["stage"] == "Staging" and after["2"]["tags"]["test_status"] == "failed"
    assert after["1"]["stage"] == "Production"
