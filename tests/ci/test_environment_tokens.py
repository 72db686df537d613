"""The token of an environment's variable group: what code CD needs, nothing more (issue 12, point 5).

It writes its environment's workspace (`workspace:write`) without the right to push to every repository
(`repo:write`), and it reaches only its own environment: a token of `alpha` cannot write `beta`'s
workspace, reach `beta`'s MLflow or deploy a model to `beta`. In-process, with the Databricks app and
the MLflow mount driven over ASGI.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from mlyard.api.mlflow_mount import MlflowMount
from mlyard.api.routes import databricks as databricks_routes
from mlyard.errors import PermissionDenied
from mlyard.services import auth, deployments, environments, models, resources, workspace_jobs
from tests.ci.engine import ADMIN, Engine

BETA_REFUSED = ("the token of environment 'alpha' cannot reach environment 'beta': use the token of the variable "
                "group 'beta'")


def call(app: Any, method: str, url: str, token: str, **options: Any) -> httpx.Response:
    """One request to an ASGI app, in this process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlyard.test") as client:
            return await client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **options)

    return asyncio.run(send())


def group_token(engine: Engine, env: str) -> str:
    with engine.platform.sessions() as session:
        _plain, secret = resources.group_values(engine.platform, session, env)
    return secret["DATABRICKS_TOKEN"]


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    for env in ("alpha", "beta"):
        environments.create_environment(engine.platform, ADMIN, env)
    reader = auth.create_token(engine.platform, username="admin", name="reader", scopes=["repo:read"])
    writer = auth.create_token(engine.platform, username="admin", name="writer", scopes=["repo:write"])
    return {"alpha": group_token(engine, "alpha"), "reader": reader.token or "", "writer": writer.token or ""}


def test_the_group_token_writes_workspaces_but_cannot_push(engine: Engine, tokens: dict[str, str]) -> None:
    principal = auth.authenticate(engine.platform, tokens["alpha"])
    assert principal.scopes == frozenset({"repo:read", "workspace:write", "pipelines:run"})
    assert principal.environment == "alpha"
    with pytest.raises(PermissionDenied, match="token lacks the 'repo:write' scope"):
        principal.require("repo:write")  # git push, creating repositories and pipelines
    writer = auth.authenticate(engine.platform, tokens["writer"])
    assert writer.has("workspace:write") and writer.environment is None  # implied by repo:write, unbound


def test_the_databricks_api_needs_workspace_write_and_the_same_environment(
    engine: Engine, tokens: dict[str, str]
) -> None:
    api = databricks_routes.create_app(engine.platform)

    def mkdirs(env: str, token: str) -> tuple[int, dict]:
        answer = call(api, "POST", f"/{env}/api/2.0/workspace/mkdirs", token, json={"path": "/Shared/x"})
        return answer.status_code, answer.json()

    assert mkdirs("alpha", tokens["alpha"]) == (200, {})
    assert mkdirs("beta", tokens["alpha"]) == (403, {"error_code": "PERMISSION_DENIED", "message": BETA_REFUSED})
    status = call(api, "GET", "/beta/api/2.0/workspace/get-status", tokens["alpha"], params={"path": "/"})
    assert status.status_code == 403  # reading another environment is refused too
    assert mkdirs("beta", tokens["reader"])[1]["message"].startswith("token lacks the 'workspace:write' scope")
    assert mkdirs("beta", tokens["writer"]) == (200, {})


def test_mlflow_deployments_models_and_jobs_of_another_environment_are_refused(
    engine: Engine, tokens: dict[str, str]
) -> None:
    # Refused before the environment's MLflow server is started.
    answer = call(MlflowMount(engine.platform), "GET", "/mlflow/beta/api/2.0/mlflow/registered-models/search",
                  tokens["alpha"])  # fmt: skip
    assert (answer.status_code, answer.json()) == (403, {"error_code": "PERMISSION_DENIED", "message": BETA_REFUSED})
    principal = auth.authenticate(engine.platform, tokens["alpha"])
    with pytest.raises(PermissionDenied, match="cannot reach environment 'beta'"):
        deployments.deploy(engine.platform, principal, env="beta", model="m", version="1")
    with pytest.raises(PermissionDenied, match="cannot reach environment 'beta'"):
        deployments.delete(engine.platform, principal, "beta", "m")
    with pytest.raises(PermissionDenied, match="cannot reach environment 'beta'"):
        models.stage(engine.platform, principal, "beta", "m", "1", "Production")
    with pytest.raises(PermissionDenied, match="cannot reach environment 'beta'"):
        workspace_jobs.start(engine.platform, principal, env="beta", app="m", branch="master", entrypoint="train",
                             args=[])  # fmt: skip
