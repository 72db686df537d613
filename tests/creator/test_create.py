"""The ML project creator end to end: `mlyard create`, permission on first use, code in the workspace."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.ci.helpers import runs_of, show, wait_state
from tests.conftest import Git, Server, mlyard, start_server

pytestmark = pytest.mark.slow


def deployed(server: Server, repo: str, branch: str) -> Path:
    return server.home / "envs" / "dev" / "workspace" / "ml_apps" / repo / branch


def wait_run(server: Server, pipeline: str, count: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(server, pipeline)
        if len(runs) >= count:
            return runs[0]
        time.sleep(0.1)
    raise AssertionError(f"{pipeline} has {len(runs_of(server, pipeline))} runs, expected {count}")


def test_create_demo_project_permit_and_deploy_branches(server: Server, git: Git) -> None:
    out = server.cli("create", "demo-model", "--env", "dev", "--demo", "--follow", "--json")
    result = json.loads(out.stdout[out.stdout.index("{\n"):])
    assert result["repo"]["name"] == "demo-model"
    assert result["pipelines"] == ["demo-model-deploy-code", "demo-model-promote-model", "demo-model-deploy-model",
                                   "demo-model-batch-inference", "demo-model-monitor"]
    first = result["deploy_code_run"]
    assert first["number"] == 1 and first["state"] == "waiting" and first["reason"] == "IndividualCI"
    assert sorted(first["waiting_for"]) == ["environment:dev", "variablegroup:dev"]
    assert f"mlyard runs permit {first['id']}" in first["message"]
    with server.client() as api:
        folder = [p["name"] for p in api.get("/api/v1/pipelines", params={"folder": "demo-model"}).json()]
    assert sorted(folder) == sorted(result["pipelines"])

    server.cli("runs", "permit", str(first["id"]))
    done = wait_state(server, first["id"], timeout=120)
    assert done["state"] == "succeeded"
    assert done["tests"]["failed"] == 0 and done["tests"]["passed"] > 0
    target = deployed(server, "demo-model", "master")
    manifest = json.loads((target / ".mlyard-deploy.json").read_text())
    assert manifest["commit"] == done["source_version"] and (target / "src" / "demo_model").is_dir()
    # imported with databricks-sdk by the project's own mlops/deploy_code.py, with the group's token
    assert (manifest["deployed_by"], manifest["run"]["id"]) == ("env-dev", done["id"])

    git("clone", "-q", server.remote("demo-model"), "w")
    work = git.cwd / "w"
    git("checkout", "-q", "-b", "feature/x", cwd=work)
    git.commit({"README.md": "docs only\n"}, "docs", cwd=work)
    git("push", "-q", "origin", "feature/x", cwd=work)
    time.sleep(1.0)
    assert len(runs_of(server, "demo-model-deploy-code")) == 1, "a README-only push must start nothing"
    assert all(r["source_branch"] == "refs/heads/master" for r in runs_of(server, "demo-model-promote-model"))
    git.commit({"src/demo_model/extra.py": "VALUE = 1\n"}, "code change", cwd=work)
    git("push", "-q", "origin", "feature/x", cwd=work)
    second = wait_run(server, "demo-model-deploy-code", 2)
    assert second["source_branch"] == "refs/heads/feature/x"
    finished = wait_state(server, second["id"], timeout=120)
    assert finished["state"] == "succeeded"  # permission was remembered
    assert (deployed(server, "demo-model", "feature/x") / "src" / "demo_model" / "extra.py").exists()
    assert deployed(server, "demo-model", "master").exists()


def test_create_lists_every_waiting_run_with_its_permit_command(server: Server) -> None:
    env = {"MLYARD_URL": server.url, "MLYARD_TOKEN": server.token, "COLUMNS": "80"}
    out = mlyard("create", "plain-model", "--env", "dev", "--follow", home=server.home, env=env)
    assert "created plain-model" in out.stdout
    code = show(server, wait_run(server, "plain-model-deploy-code", 1)["id"])
    model_ci = show(server, wait_run(server, "plain-model-promote-model", 1)["id"])
    assert code["state"] == model_ci["state"] == "waiting"
    for run in (code, model_ci):  # each waiting run, with the exact command, on one line at 80 columns
        line = next(line for line in out.stdout.splitlines() if f"mlyard runs permit {run['id']} " in line)
        assert run["pipeline"] in line
    # the runs of the first push are requested for the person who ran `mlyard create`, not for `creator`
    assert code["requested_for"] == model_ci["requested_for"] == server.username
    with server.client() as api:
        event = api.get("/api/v1/repos/plain-model/events").json()[0]
    assert (event["pusher"], event["requested_for"]) == ("creator", server.username)


def test_only_the_creator_and_admins_push_for_someone_else(server: Server, git: Git) -> None:
    with server.client() as api:
        api.post("/api/v1/users", json={"username": "pat"}).raise_for_status()
        token = api.post("/api/v1/tokens", json={"user": "pat", "name": "t", "scopes": ["repo:write", "repo:read"]})
        token.raise_for_status()
        api.post("/api/v1/repos", json={"name": "for-whom"}).raise_for_status()
    git("clone", "-q", server.remote("for-whom"), "w")
    work = git.cwd / "w"
    git.commit({"a.txt": "a\n"}, "first", cwd=work)
    git("push", "-q", "-o", "requested-for=admin", server.remote("for-whom", token.json()["token"], "pat"),
        "HEAD:refs/heads/master", cwd=work)  # fmt: skip
    with server.client() as api:
        event = api.get("/api/v1/repos/for-whom/events").json()[0]
    assert (event["pusher"], event["requested_for"]) == ("pat", "pat")  # pat may not push for admin


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["Bad_Name"], 2, "invalid repository name 'Bad_Name'"),
        (["ok-name", "--env", "staging"], 3, "environment 'staging' not found; existing environments: dev, test, prod"),
        (["ml-project-template"], 4, "repository 'ml-project-template' already exists"),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(server: Server, args: list[str], code: int, message: str) -> None:
    before = runs_of(server, "ml-project-creator-pipeline")
    out = server.cli("create", *args, check=False)
    assert out.returncode == code and message in out.stderr and "Traceback" not in out.stderr
    assert runs_of(server, "ml-project-creator-pipeline") == before
    with server.client() as api:
        assert api.get("/api/v1/repos/ok-name").status_code == 404


def test_a_failure_after_the_repo_exists_leaves_nothing(server: Server, git: Git) -> None:
    # A pipeline already named like the third one makes the creator fail after it made the repo.
    with server.client() as api:
        api.post("/api/v1/pipelines", json={"name": "clash-deploy-model", "repo": "infrastructure",
                                            "yaml": ".cicd/pipelines/create-ml-repo.yml"}).raise_for_status()
    out = server.cli("create", "clash", "--env", "dev", "--follow", check=False)
    assert out.returncode == 1
    assert "failed while registering pipeline clash-deploy-model" in out.stderr
    with server.client() as api:
        assert api.get("/api/v1/repos/clash").status_code == 404
        names = [p["name"] for p in api.get("/api/v1/pipelines").json()]
    assert "clash-deploy-code" not in names and "clash-promote-model" not in names
    assert not (server.home / "repos" / "clash.git").exists()


def test_a_template_that_does_not_render_leaves_nothing(tmp_path: Path, git: Git) -> None:
    """The repository and its pipelines are created while the template renders: a render that fails removes
    them again, and the error says what failed and what was removed."""
    server = start_server(tmp_path / "broken")
    try:
        git("clone", "-q", server.remote("ml-project-template"), "t")
        git.commit({"template/broken.txt.jinja": "{{ unclosed\n"}, "a broken file", cwd=git.cwd / "t")
        git("push", "-q", "origin", "HEAD", cwd=git.cwd / "t")
        out = server.cli("infra", "create-project", "--repo-name", "broken", "--env-name", "dev", check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "could not render the project template" in out.stderr and ": template/broken.txt.jinja:1: " in out.stderr
        pipelines = [f"broken-{kind}" for kind in ("deploy-code", "promote-model", "deploy-model", "batch-inference",
                                                  "monitor")]  # fmt: skip
        assert f"nothing was left behind (removed {', '.join(pipelines)}, repository broken)" in out.stderr
        with server.client() as api:
            assert api.get("/api/v1/repos/broken").status_code == 404
            names = {p["name"] for p in api.get("/api/v1/pipelines").json()}
        assert not names & set(pipelines)
        assert not (server.home / "repos" / "broken.git").exists()
    finally:
        server.stop()
