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


def _read_and_delete(path: str, store: resources.SecretStore, noun: str) -> None:
    """GET /{path}, GET /{path}/{name} and DELETE /{path}/{name} of one kind of protected resource."""

    def list_all(
        _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
    ) -> list[dict[str, Any]]:
        return store.list(platform)

    def show(
        name: str, _: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
    ) -> dict[str, Any]:
        return store.get(platform, name)

    def delete(
        name: str, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
    ) -> dict[str, Any]:
        return store.delete(platform, principal, name)

    router.add_api_route(f"/{path}", list_all, methods=["GET"], name=f"list_{noun}s")
    router.add_api_route(f"/{path}/{{name}}", show, methods=["GET"], name=f"show_{noun}")
    router.add_api_route(f"/{path}/{{name}}", delete, methods=["DELETE"], name=f"delete_{noun}")


_read_and_delete("connections", resources.CONNECTIONS, "connection")
_read_and_delete("variable-groups", resources.GROUPS, "group")


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


@router.post("/variable-groups", status_code=201)
def create_group(
    body: VariableGroupCreate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return resources.create_group(
        platform, principal, body.name, variables=body.variables, secret_variables=body.secrets, update=body.update
    )


@router.patch("/environments/{name}")
def update_environment(
    name: str,
    body: EnvironmentUpdate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return resources.set_environment(
        platform, principal, name, approval_required=body.approval_required, notify_webhook=body.notify_webhook
    )
