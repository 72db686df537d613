"""Service connections, variable groups and environment settings (protected resources)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlyard.api.deps import current_principal, get_platform, requires
from mlyard.api.schemas import ConnectionCreate, EnvironmentUpdate, VariableGroupCreate
from mlyard.services import resources
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(tags=["resources"])


@router.get("/connections")
def list_connections(
    _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return resources.list_connections(platform)


@router.post("/connections", status_code=201)
def create_connection(
    body: ConnectionCreate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return resources.create_connection(
        platform,
        principal,
        body.name,
        type=body.type,
        settings=body.settings,
        secret_settings=body.secrets,
        update=body.update,
    )


@router.get("/connections/{name}")
def show_connection(
    name: str, _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return resources.get_connection(platform, name)


@router.delete("/connections/{name}")
def delete_connection(
    name: str, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return resources.delete_connection(platform, principal, name)


@router.get("/variable-groups")
def list_groups(
    _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return resources.list_groups(platform)


@router.post("/variable-groups", status_code=201)
def create_group(
    body: VariableGroupCreate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return resources.create_group(
        platform, principal, body.name, variables=body.variables, secret_variables=body.secrets, update=body.update
    )


@router.get("/variable-groups/{name}")
def show_group(
    name: str, _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return resources.get_group(platform, name)


@router.delete("/variable-groups/{name}")
def delete_group(
    name: str, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return resources.delete_group(platform, principal, name)


@router.patch("/environments/{name}")
def update_environment(
    name: str,
    body: EnvironmentUpdate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return resources.set_environment(platform, principal, name, approval_required=body.approval_required)
