"""Environments: dev/test/prod and any added later."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlyard.api.deps import current_principal, get_platform, requires
from mlyard.api.schemas import EnvironmentCreate
from mlyard.services import environment_groups, environments, resources
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(prefix="/environments", tags=["environments"])


@router.get("")
def list_environments(
    _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return environments.list_environments(platform)


@router.get("/{name}")
def show_environment(
    name: str, _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return environments.get_environment(platform, name)


@router.post("", status_code=201)
def create_environment(
    body: EnvironmentCreate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return environments.create_environment(
        platform, principal, body.name, mlflow_tracking_uri=body.mlflow_tracking_uri, workspace_uri=body.workspace_uri
    )


@router.post("/{name}/rotate-token")
def rotate_token(
    name: str, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    """A new token in the environment's variable group (DATABRICKS_TOKEN, MLFLOW_TRACKING_TOKEN); the
    previous one is revoked. Answers with the group (names of its secrets, never their values)."""
    environment_groups.rotate_token(platform, principal, name)
    return resources.GROUPS.get(platform, name)
