"""`mlyard workspace` as a pipeline step and a user run it: subprocesses, a real server where needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.workspace.conftest import run_cli

PIPELINE_ENV = {
    "BUILD_SOURCEVERSION": "1111111111111111111111111111111111111111",
    "BUILD_BUILDID": "42",
    "BUILD_REQUESTEDFOR": "Ana Admin",
    "MLYARD_RUNURL": "http://127.0.0.1:1/runs/42",
}


def test_deploy_with_an_explicit_workspace_uri(tmp_path: Path, source: Path) -> None:
    uri = (tmp_path / "ws").as_uri()
    out = run_cli(
        "workspace", "deploy", "--env", "dev", "--app", "demo", "--branch", "master",
        "--source", str(source), "--workspace-uri", uri, "--commit", "abc", "--run", "9", "--by", "bob", "--json",
        home=tmp_path / "no-home",
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result["path"] == str(tmp_path / "ws/ml_apps/demo/master")
    assert {k: result[k] for k in ("app", "branch", "commit", "run", "deployed_by", "environment", "files")} == {
        "app": "demo",
        "branch": "master",
        "commit": "abc",
        "run": {"id": "9", "url": None},
        "deployed_by": "bob",
        "environment": "dev",
        "files": 3,
    }
    assert result["workspace_uri"] == uri
    assert (tmp_path / "ws/ml_apps/demo/master/src/demo/train.py").is_file()


def test_deploy_as_a_pipeline_step_reads_workspace_uri_and_build_variables(tmp_path: Path, source: Path) -> None:
    env = {**PIPELINE_ENV, "WORKSPACE_URI": (tmp_path / "ws").as_uri()}
    out = run_cli(
        "workspace", "deploy", "--env", "test", "--app", "demo", "--branch", "refs/heads/feature/x",
        "--source", str(source), "--json",
        home=tmp_path / "no-home", env=env,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result["branch"] == "feature/x"
    assert result["path"] == str(tmp_path / "ws/ml_apps/demo/feature/x")
    assert result["commit"] == PIPELINE_ENV["BUILD_SOURCEVERSION"]
    assert result["run"] == {"id": "42", "url": "http://127.0.0.1:1/runs/42"}
    assert result["deployed_by"] == "Ana Admin" and result["environment"] == "test"
    manifest = json.loads((tmp_path / "ws/ml_apps/demo/feature/x/.mlyard-deploy.json").read_text())
    assert manifest["commit"] == result["commit"]

    plain = run_cli(
        "workspace", "deploy", "--env", "test", "--app", "demo", "--branch", "feature/x", "--source", str(source),
        home=tmp_path / "no-home", env=env,
    )  # fmt: skip
    assert plain.stdout == (
        "deployed demo feature/x (commit 1111111111, 3 files, "
        f"{result['bytes']} bytes) to test: {(tmp_path / 'ws/ml_apps/demo/feature/x').as_uri()}\n"
    )


def test_the_explicit_uri_wins_over_the_environment_variable(tmp_path: Path, source: Path) -> None:
    env = {"WORKSPACE_URI": (tmp_path / "from-env").as_uri()}
    run_cli(
        "workspace", "deploy", "--env", "dev", "--app", "demo", "--branch", "master", "--source", str(source),
        "--workspace-uri", (tmp_path / "explicit").as_uri(),
        home=tmp_path / "no-home", env=env,
    )  # fmt: skip
    assert (tmp_path / "explicit/ml_apps/demo/master").is_dir()
    assert not (tmp_path / "from-env").exists()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--branch", "../../etc"], "error: invalid branch name '../../etc': '..' segments would escape the "
         "workspace", 2),
        (["--app", "/etc"], "error: invalid repository name '/etc': names use lower-case letters", 2),
        (["--source", "/nonexistent/src"], "error: source folder '/nonexistent/src' does not exist", 3),
        (["--workspace-uri", "databricks://adb-1.net/"], "error: unsupported workspace URI 'databricks://adb-1.net/': "
         "supported schemes: file://", 2),
    ],
)  # fmt: skip
def test_deploy_errors_are_one_line(tmp_path: Path, source: Path, args: list[str], message: str, code: int) -> None:
    options = {
        "--env": "dev",
        "--app": "demo",
        "--branch": "master",
        "--source": str(source),
        "--workspace-uri": (tmp_path / "ws").as_uri(),
    }
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [item for pair in options.items() for item in pair]
    out = run_cli("workspace", "deploy", *argv, home=tmp_path / "no-home", check=False)
    assert out.returncode == code
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "ws/ml_apps/demo/master").exists()


@pytest.mark.slow
def test_deploy_ls_and_show_through_the_server(server: Server, tmp_path: Path, source: Path) -> None:
    env = {**PIPELINE_ENV, "MLYARD_URL": server.url, "MLYARD_TOKEN": server.token}
    app = "cli-ws-demo"
    deployed = json.loads(
        run_cli(
            "workspace", "deploy", "--env", "dev", "--app", app, "--branch", "feature/x", "--source", str(source),
            "--json", home=server.home, env=env,
        ).stdout
    )  # fmt: skip
    workspace = server.home / "envs/dev/workspace"
    assert deployed["path"] == str(workspace / "ml_apps" / app / "feature/x")
    assert deployed["workspace_uri"] == workspace.as_uri()

    everything = json.loads(run_cli("workspace", "ls", "--json", home=server.home, env=env).stdout)
    mine = [(r["environment"], r["app"], r["branch"], r["commit"]) for r in everything if r["app"] == app]
    assert mine == [("dev", app, "feature/x", PIPELINE_ENV["BUILD_SOURCEVERSION"])]
    table = run_cli("workspace", "ls", home=server.home, env=env).stdout
    assert app in table and "feature/x" in table

    inside = json.loads(
        run_cli("workspace", "ls", "--env", "dev", f"ml_apps/{app}/feature", "--json", home=server.home, env=env).stdout
    )
    assert [(e["name"], e["type"]) for e in inside] == [("x", "branch")]

    shown = json.loads(
        run_cli(
            "workspace", "show", "--env", "dev", "--app", app, "--branch", "feature/x", "--json",
            home=server.home, env=env,
        ).stdout
    )  # fmt: skip
    assert shown["commit"] == PIPELINE_ENV["BUILD_SOURCEVERSION"] and shown["run"]["id"] == "42"
    assert [f["path"] for f in shown["files"]] == [
        "src/demo/__init__.py",
        "src/demo/train.py",
        "tests/unit/test_train.py",
    ]
    text = run_cli(
        "workspace", "show", "--env", "dev", "--app", app, "--branch", "feature/x", home=server.home, env=env
    ).stdout
    assert "deployed by  Ana Admin" in text and "src/demo/train.py" in text


@pytest.mark.slow
def test_unknown_environment_and_missing_branch_through_the_server(server: Server, tmp_path: Path) -> None:
    env = {"MLYARD_URL": server.url, "MLYARD_TOKEN": server.token}
    out = run_cli("workspace", "ls", "--env", "staging", home=server.home, env=env, check=False)
    assert out.returncode == 3
    # the shared server may hold environments other tests made after dev, test, prod
    assert out.stderr.startswith("error: environment 'staging' not found; existing environments: dev, test, prod")
    out = run_cli(
        "workspace", "show", "--env", "prod", "--app", "nothing-here", "--branch", "master",
        home=server.home, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 3
    prod = (server.home / "envs/prod/workspace").as_uri()
    assert out.stderr == f"error: branch 'master' of app 'nothing-here' is not deployed in workspace {prod}\n"
    out = run_cli("workspace", "ls", "ml_apps", home=server.home, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr == "error: listing 'ml_apps' needs --env ENV (the environment whose workspace to list)\n"
