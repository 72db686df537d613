"""The CLI as a user runs it: a subprocess against a real server."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.conftest import Git, Server, mlyard, new_server

pytestmark = pytest.mark.slow


def test_init_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = json.loads(mlyard("init", "--json", home=home).stdout)
    assert first["created"] is True and first["username"] == "admin"
    assert first["token"].startswith("myd_") and len(first["token"]) >= 4 + 43
    assert first["home"] == str(home) and first["url"] == "http://127.0.0.1:8765"
    config = home / "cli.json"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == first["token"]
    before = (home / "mlyard.db").read_bytes()

    again = mlyard("init", home=home)
    assert "already initialised: nothing changed" in again.stdout
    second = json.loads(mlyard("init", "--json", home=home).stdout)
    assert second["created"] is False and second["token"] == first["token"]
    db = sqlite3.connect(home / "mlyard.db")
    # the admin, the owners of the environments' group tokens, and the creator whose token the project
    # creator pipeline uses
    assert db.execute("select username from users order by id").fetchall() == [
        ("admin",), ("env-dev",), ("env-test",), ("env-prod",), ("creator",)]
    assert db.execute("select count(*) from tokens").fetchone() == (5,)
    assert [r[0] for r in db.execute("select name from variable_groups order by id")] == ["dev", "test", "prod"]
    assert [r[0] for r in db.execute("select name from repos order by name")] == ["infrastructure",
                                                                                "ml-project-template"]
    assert [r[0] for r in db.execute("select name from environments order by id")] == ["dev", "test", "prod"]
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    db.close()
    assert (home / "mlyard.db").read_bytes() == before


def test_init_honours_mlyard_home_and_default_branch(tmp_path: Path) -> None:
    home = tmp_path / "env-home"
    out = mlyard("init", "--default-branch", "main", "--username", "ops", "--json", home=home)
    assert json.loads(out.stdout)["username"] == "ops"
    assert json.loads((home / "settings.json").read_text())["default_branch"] == "main"


def test_init_rejects_a_bad_user_name_and_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "bad"
    out = mlyard("init", "--username", "Bad Name", home=home, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: invalid user name 'Bad Name'")
    assert "Traceback" not in out.stderr
    assert not home.exists()


def test_server_on_a_home_without_init_says_so_before_its_imports(tmp_path: Path) -> None:
    out = mlyard("server", home=tmp_path / "nowhere", check=False, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert out.returncode == 2, out.stderr
    assert f"{tmp_path / 'nowhere'} is not an mlyard home: run `mlyard init` first" in out.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "import time:" in line}
    assert "mlyard.cli.main" in imported and "mlyard.app" not in imported
    assert "Traceback" not in out.stderr and not (tmp_path / "nowhere").exists()


def test_cli_says_when_the_server_is_not_running(tmp_path: Path) -> None:
    home = new_server(tmp_path).home  # initialised (in this process: `init` is tested above), never started
    out = mlyard("repos", "list", home=home, check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the mlyard server" in lines[0] and "mlyard server" in lines[0]


def test_repos_commands_with_json(server: Server, tmp_path: Path, git: Git) -> None:
    src = tmp_path / "project"
    (src / "src").mkdir(parents=True)
    (src / "src" / "main.py").write_text("print('x')\n")
    created = json.loads(server.cli("repos", "create", "cli-repo", "--from-dir", str(src), "--json").stdout)
    assert created["name"] == "cli-repo" and created["default_branch"] == "master"
    listed = json.loads(server.cli("repos", "list", "--json").stdout)
    assert "cli-repo" in [r["name"] for r in listed]
    shown = json.loads(server.cli("repos", "show", "cli-repo", "--json").stdout)
    assert shown["last_commit"]["subject"] == "Initial commit"
    git("clone", "-q", server.remote("cli-repo"), "c")
    assert (git.cwd / "c" / "src" / "main.py").read_text() == "print('x')\n"
    human = server.cli("repos", "show", "cli-repo").stdout
    assert "Initial commit" in human and "master" in human
    events = json.loads(server.cli("repos", "events", "cli-repo", "--json").stdout)
    assert events[0]["changed_paths"] == ["src/main.py"]


def test_cli_errors_are_one_line_with_exit_codes(server: Server) -> None:
    bad = server.cli("repos", "create", "Bad", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid repository name 'Bad'")
    missing = server.cli("repos", "show", "nope", check=False)
    assert missing.returncode == 3 and "not found" in missing.stderr
    server.cli("repos", "create", "dupe")
    dupe = server.cli("repos", "create", "dupe", check=False)
    assert dupe.returncode == 4 and "already exists" in dupe.stderr
    denied = server.cli("repos", "list", token="myd_wrong", check=False)
    assert denied.returncode == 5 and "invalid token" in denied.stderr
    for out in (bad, missing, dupe, denied):
        assert "Traceback" not in out.stderr


def test_tokens_and_users_commands(server: Server) -> None:
    user = json.loads(server.cli("users", "create", "alice", "--json").stdout)
    assert user == {**user, "username": "alice", "is_admin": False}
    made = json.loads(
        server.cli(
            "tokens",
            "create",
            "--name",
            "ci",
            "--scope",
            "repo:read",
            "--scope",
            "pipelines:run",
            "--user",
            "alice",
            "--json",
        ).stdout
    )
    assert made["token"].startswith("myd_") and made["scopes"] == ["repo:read", "pipelines:run"]
    whoami = json.loads(server.cli("whoami", "--json", token=made["token"]).stdout)
    assert whoami["username"] == "alice"
    listed = json.loads(server.cli("tokens", "list", "--json", token=made["token"]).stdout)
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    server.cli("tokens", "revoke", "ci", token=made["token"])
    after = server.cli("whoami", token=made["token"], check=False)
    assert after.returncode == 5 and "revoked" in after.stderr
    bad_scope = server.cli("tokens", "create", "--name", "x", "--scope", "everything", check=False)
    assert bad_scope.returncode == 2 and "unknown scope 'everything'" in bad_scope.stderr


def test_environments_are_declared(server: Server) -> None:
    envs = json.loads(server.cli("environments", "list", "--json").stdout)
    # The shared server's other tests may add environments after the three that `init` declares.
    assert [e["name"] for e in envs][:3] == ["dev", "test", "prod"]
    dev = json.loads(server.cli("environments", "show", "dev", "--json").stdout)
    assert dev["mlflow_tracking_uri"].startswith("sqlite:///") and dev["workspace_uri"].startswith("file://")
    assert dev["serving"]["target"] == "local"
    unknown = server.cli("environments", "show", "staging", check=False)
    assert unknown.returncode == 3 and "existing environments: dev, test, prod" in unknown.stderr


def test_lists_are_aligned_plain_columns_that_keep_whole_values(server: Server, tmp_path: Path) -> None:
    long_name = "cli-columns-" + "x" * 40
    server.cli("repos", "create", long_name)
    lines = server.cli("repos", "list").stdout.splitlines()
    header = lines[0]
    assert header.split()[:2] == ["NAME", "DEFAULT"] and "\x1b[" not in header  # not a terminal: no styling
    column = header.index("CLONE URL")
    row = next(line for line in lines if line.startswith(long_name))
    assert row[column:] == f"{server.url}/git/{long_name}.git"  # aligned, and never cut to a width
    shown = server.cli("repos", "show", long_name).stdout
    assert f"clone url       {server.url}/git/{long_name}.git" in shown and "[" not in shown


def test_status_shows_the_servers_warm_pools_with_their_limits(server: Server) -> None:
    from mlyard.views import ServerStatusView

    status = ServerStatusView.from_dict(json.loads(server.cli("status", "--json").stdout))
    with server.client() as api:
        health = api.get("/health").json()
        assert api.get("/api/v1/status", headers={"Authorization": ""}).status_code == 401
    assert status.version == health["version"] and status.url == server.url and status.uptime_seconds > 0
    assert status.local_agents == status.local_agents_configured == 2  # the suite's servers: two local agents
    pools = {pool.name: pool for pool in status.pools}
    assert list(pools) == ["mlflow-zygote", "mlflow-servers", "scoring", "step-sandboxes", "job-sandboxes"]
    zygote = health["mlflow_zygote"]  # the suite's servers start it at the first use (MLYARD_REGISTRY_WARM=0)
    assert pools["mlflow-zygote"].ready == (1 if zygote and zygote["warm"] else 0)
    assert pools["mlflow-zygote"].setting == "MLYARD_REGISTRY_WARM=0" and pools["mlflow-zygote"].limit == 1
    detail = pools["mlflow-zygote"].detail
    assert (f"process {zygote['pid']}" in detail) if zygote else detail.startswith("not started")
    assert pools["scoring"].setting == "MLYARD_SERVING_WARM_POOL=0" and pools["scoring"].detail == "off"
    assert pools["step-sandboxes"].limit == 0 and pools["step-sandboxes"].ready == health["warm_step_sandboxes"]
    assert pools["mlflow-servers"].limit is None
    text = server.cli("status").stdout
    assert f"at {server.url}, up " in text and "local agents: 2 of 2 running; pipeline jobs: " in text
    header = next(line for line in text.splitlines() if line.startswith("WARM POOL"))
    assert header.split() == ["WARM", "POOL", "READY", "STARTING", "LIMIT", "SETTING", "DETAIL"]
    assert "MLYARD_SERVING_WARM_POOL=0" in text and "mlflow-servers" in text
