"""Environments as variable groups (issue 12, point 4) and the standard run link.

In-process (the run engine of tests/ci/engine.py): creating an environment creates its group; a sync is
idempotent, repairs a revoked token, follows the server's URL and keeps a team's own variables; rotation
revokes the old token; a run using `- group: ENV` asks permission first. On a real server: the CLI shows
the group with its secrets masked, a step sees the values (secrets only through `env:`), and the run
link `$(System.CollectionUri)$(System.TeamProject)/_build/results?buildId=$(Build.BuildId)` opens the run.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import httpx
import pytest

from mlyard.app import create_app
from mlyard.db.engine import transaction
from mlyard.errors import AuthenticationError, NotFound, PermissionDenied
from mlyard.services import auth, environment_groups, environments, resources, runs
from mlyard.services.auth import Principal
from mlyard.services.environments import add_environment
from tests.ci.engine import ADMIN, Engine
from tests.ci.helpers import logs, make_repo, register, run, show, wait_state
from tests.conftest import REPO_ROOT, TLS, Git, Server

TOKENS = ["DATABRICKS_TOKEN", "MLFLOW_TRACKING_TOKEN"]


def group_secrets(engine: Engine, name: str) -> dict[str, str]:
    with engine.platform.sessions() as session:
        _plain, secret = resources.group_values(engine.platform, session, name)
    return secret


def principal_of(engine: Engine, token: str) -> Principal:
    return auth.authenticate(engine.platform, token)


def test_creating_an_environment_creates_its_group(engine: Engine) -> None:
    environments.create_environment(engine.platform, ADMIN, "staging")
    group = resources.GROUPS.get(engine.platform, "staging")
    assert group["variables"] == {
        "DATABRICKS_HOST": "http://127.0.0.1:8765/databricks/staging",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:8765/mlflow/staging",
        "DEPLOY_TARGET": "mlyard",
        "DEPLOY_TARGET_URI": "mlyard+http://127.0.0.1:8765/staging",
    }
    assert group["secret_variables"] == TOKENS  # names only: the answer never holds a secret
    secret = group_secrets(engine, "staging")
    token = secret["DATABRICKS_TOKEN"]
    assert secret["MLFLOW_TRACKING_TOKEN"] == token and token not in json.dumps(group)
    owner = principal_of(engine, secret["DATABRICKS_TOKEN"])
    assert (owner.username, owner.is_admin) == ("env-staging", False)
    assert owner.scopes == frozenset({"repo:read", "workspace:write", "pipelines:run"})  # no admin, agent, repo:write
    with pytest.raises(PermissionDenied, match="'admin' scope"):
        environment_groups.rotate_token(engine.platform, owner, "staging")


def test_a_sync_is_idempotent_repairs_the_token_and_keeps_the_team_variables(engine: Engine) -> None:
    environments.create_environment(engine.platform, ADMIN, "qa")
    first = group_secrets(engine, "qa")["DATABRICKS_TOKEN"]
    unchanged = environment_groups.sync_group(engine.platform, "qa")
    assert not unchanged.written and not unchanged.token_issued
    assert group_secrets(engine, "qa")["DATABRICKS_TOKEN"] == first

    # a team adds its own variables (and overwrites one of mlyard's): the sync keeps theirs, restores mlyard's
    group = resources.GROUPS.get(engine.platform, "qa")
    resources.create_group(engine.platform, ADMIN, "qa", update=True,
                           variables={**group["variables"], "region": "eu", "DEPLOY_TARGET": "azureml"},
                           secret_variables={**group_secrets(engine, "qa"), "API_KEY": "k3y"})  # fmt: skip
    repaired = environment_groups.sync_group(engine.platform, "qa")
    assert repaired.changed == ("DEPLOY_TARGET",) and not repaired.token_issued
    group = resources.GROUPS.get(engine.platform, "qa")
    assert group["variables"]["region"] == "eu" and group["variables"]["DEPLOY_TARGET"] == "mlyard"
    assert group_secrets(engine, "qa")["API_KEY"] == "k3y"

    # a revoked token is replaced at the next sync (server start, infra sync)
    auth.revoke_token(engine.platform, ADMIN, str(principal_of(engine, first).token_id))
    assert environment_groups.sync_group(engine.platform, "qa").token_issued
    second = group_secrets(engine, "qa")["DATABRICKS_TOKEN"]
    assert second != first and principal_of(engine, second).username == "env-qa"

    # the server's URL changed (public_url behind a proxy): the URLs follow, the token stays
    engine.platform.settings = replace(engine.platform.settings, public_url="https://ml.example/")
    moved = environment_groups.sync_all(engine.platform)
    assert [(s.environment, s.changed, s.token_issued) for s in moved] == [
        ("qa", ("DATABRICKS_HOST", "DEPLOY_TARGET_URI", "MLFLOW_TRACKING_URI"), False)
    ]
    assert resources.GROUPS.get(engine.platform, "qa")["variables"]["DATABRICKS_HOST"] == "https://ml.example/databricks/qa"


def test_the_server_start_gives_existing_environments_their_group(engine: Engine) -> None:
    """A home made before environments had groups: its environments get them when the server starts."""
    settings = replace(engine.platform.settings, port=8911)
    with transaction(engine.platform.sessions) as session:
        add_environment(session, settings, "legacy", actor="admin")
    with pytest.raises(NotFound, match="variable group 'legacy' not found"):
        resources.GROUPS.get(engine.platform, "legacy")
    settings.save()  # an initialised home
    app = create_app(settings, agents=0)
    app.platform.close()
    group = resources.GROUPS.get(engine.platform, "legacy")
    assert group["variables"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:8911/mlflow/legacy"
    assert group["secret_variables"] == TOKENS


def test_rotation_revokes_the_previous_token(engine: Engine) -> None:
    environments.create_environment(engine.platform, ADMIN, "perf")
    old = group_secrets(engine, "perf")["DATABRICKS_TOKEN"]
    rotated = environment_groups.rotate_token(engine.platform, ADMIN, "perf")
    assert rotated.token_issued and rotated.changed == ("DATABRICKS_TOKEN", "MLFLOW_TRACKING_TOKEN")
    new = group_secrets(engine, "perf")["MLFLOW_TRACKING_TOKEN"]
    assert new != old and principal_of(engine, new).username == "env-perf"
    with pytest.raises(AuthenticationError, match="revoked"):
        principal_of(engine, old)
    with pytest.raises(NotFound, match="environment 'nope' not found"):
        environment_groups.rotate_token(engine.platform, ADMIN, "nope")


def test_the_webhook_joins_and_leaves_the_group(engine: Engine) -> None:
    environments.create_environment(engine.platform, ADMIN, "live")
    resources.create_connection(engine.platform, ADMIN, "live-connection", settings={"MLYARD_ENVIRONMENT": "live"})
    resources.set_environment(engine.platform, ADMIN, "live", approval_required=None,
                              notify_webhook="https://hooks.example/T0/B0/x")  # fmt: skip
    assert group_secrets(engine, "live")["NOTIFY_WEBHOOK_URL"] == "https://hooks.example/T0/B0/x"
    assert resources.GROUPS.get(engine.platform, "live")["secret_variables"] == [*TOKENS, "NOTIFY_WEBHOOK_URL"]
    resources.set_environment(engine.platform, ADMIN, "live", approval_required=None, notify_webhook="")
    assert "NOTIFY_WEBHOOK_URL" not in group_secrets(engine, "live")


def test_every_variable_of_the_group_is_documented() -> None:
    table = (REPO_ROOT / "docs" / "server.md").read_text()
    for name in sorted(environment_groups.MANAGED):
        assert f"| `{name}` |" in table, f"docs/server.md does not document the group variable {name}"


GROUP_PIPELINE = """trigger: none
variables:
- group: dev
steps:
- script: echo "$(DATABRICKS_HOST)"
"""


def test_a_run_using_the_group_asks_permission_then_gets_its_values(engine: Engine) -> None:
    environments.create_environment(engine.platform, ADMIN, "dev")
    engine.repo("grp", {"azure-pipelines.yml": GROUP_PIPELINE})
    engine.pipeline("grp-p", "grp", "azure-pipelines.yml")
    run_id = engine.run("grp-p")
    assert engine.run_state(run_id) == "waiting" and engine.claim() is None

    assert runs.permit_run(engine.platform, ADMIN, run_id).granted == ["variablegroup:dev"]
    engine.settle()
    spec = engine.claim()
    assert spec is not None
    variables, hidden = dict(spec["variables"]), dict(spec["secrets"])  # type: ignore[call-overload]
    assert variables["DATABRICKS_HOST"] == "http://127.0.0.1:8765/databricks/dev"
    assert variables["DEPLOY_TARGET_URI"] == "mlyard+http://127.0.0.1:8765/dev"
    assert set(TOKENS) <= set(hidden) and not set(TOKENS) & set(variables)
    link = f"{variables['System.CollectionUri']}{variables['System.TeamProject']}/_build/results?buildId="
    assert link + variables["Build.BuildId"] == f"http://127.0.0.1:8765/mlyard/_build/results?buildId={run_id}"


# -- a real server -------------------------------------------------------------------------------------
STEP_PIPELINE = """trigger: none
variables:
- group: {env}
steps:
- script: |
    echo "host=$(DATABRICKS_HOST) uri=$(MLFLOW_TRACKING_URI) target=$(DEPLOY_TARGET) $(DEPLOY_TARGET_URI)"
    echo "unmapped=[${{DATABRICKS_TOKEN:-unset}}] mapped=[$TOKEN] length=${{#TOKEN}}"
    echo "link=$(System.CollectionUri)$(System.TeamProject)/_build/results?buildId=$(Build.BuildId)"
  env:
    TOKEN: $(DATABRICKS_TOKEN)
"""


@pytest.mark.slow
def test_a_step_sees_the_group_and_the_run_link_opens_the_run(server: Server, git: Git) -> None:
    env = "grp-e2e"
    server.cli("environments", "create", env)
    shown = server.cli("variable-groups", "show", env).stdout
    assert f"{server.url}/databricks/{env}" in shown and f"{server.url}/mlflow/{env}" in shown
    assert re.search(r"DATABRICKS_TOKEN\s+\*\*\*", shown) and "myd_" not in shown
    make_repo(server, git, "grp-e2e", {"azure-pipelines.yml": STEP_PIPELINE.format(env=env)})
    register(server, "grp-e2e-p", "grp-e2e", "azure-pipelines.yml")
    first = wait_state(server, run(server, "grp-e2e-p")["id"], {"waiting"})
    assert first["waiting_for"] == [f"variablegroup:{env}"]
    server.cli("runs", "permit", str(first["id"]))
    done = wait_state(server, first["id"])
    text = logs(server, done["id"])
    assert done["state"] == "succeeded", text
    url = server.url
    expected = f"host={url}/databricks/{env} uri={url}/mlflow/{env} target=mlyard mlyard+{url}/{env}"
    assert expected in text
    assert "unmapped=[unset] mapped=[***] length=47" in text and "myd_" not in text
    link = re.search(r"link=([^\s\"]+)", text)
    assert link is not None and link.group(1) == f"{server.url}/mlyard/_build/results?buildId={done['id']}"
    with httpx.Client(timeout=30, follow_redirects=False, verify=TLS) as web:
        answer = web.get(link.group(1))
        assert (answer.status_code, answer.headers["location"]) == (302, f"/runs/{done['id']}")
        assert web.get(f"{server.url}/MLyard/_build/results", params={"buildId": done["id"]}).status_code == 302
        other = web.get(f"{server.url}/other/_build/results", params={"buildId": done["id"]})
        assert other.status_code == 404 and "mlyard has one project" in other.text
        assert web.get(f"{server.url}/mlyard/_build/results", params={"buildId": "x1"}).status_code == 404
    assert show(server, done["id"])["web_url"] == f"{server.url}/runs/{done['id']}"
    rotated = server.cli("environments", "rotate-token", env).stdout
    assert f"variable group {env}: new token in DATABRICKS_TOKEN, MLFLOW_TRACKING_TOKEN" in rotated
    with server.client() as api:
        revoked = api.get("/api/v1/audit", params={"action": "token.revoked"}).json()
    assert f"env-{env}/variable-group" in [entry["target"] for entry in revoked]
