"""Deployments of models (model CD): deploy, list, show, logs, delete; monitoring: labels and the report."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mlyard.api.deps import get_platform, requires
from mlyard.services import deployments, monitoring
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(prefix="/deployments", tags=["deployments"])


class DeployRequest(BaseModel):
    env: str
    model: str
    version: str | None = None
    stage: str | None = None
    target: str = "local"
    cpu: float = Field(default=1, allow_inf_nan=False, description="cores")  # the service checks the range
    memory: float = Field(default=2, allow_inf_nan=False, description="GB")


# Starting a scoring server takes seconds, and the registry blocks: run the work in a worker thread.
@router.post("", status_code=201)
async def deploy(
    body: DeployRequest,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(
        deployments.deploy,
        platform,
        principal,
        env=body.env,
        model=body.model,
        version=body.version,
        stage=body.stage,
        target=body.target,
        cpu=body.cpu,
        memory=body.memory,
    )


@router.get("")
def list_deployments(
    env: str | None = None, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return deployments.list_deployments(platform, env=env)


@router.get("/{env}/{name}")
def show(
    env: str, name: str, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return deployments.show(platform, env, name)


@router.get("/{env}/{name}/logs")
def logs(
    env: str, name: str, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> Response:
    return Response(deployments.logs(platform, env, name), media_type="text/plain; charset=utf-8")


@router.delete("/{env}/{name}")
async def delete(
    env: str,
    name: str,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(deployments.delete, platform, principal, env, name)


class LabelsRequest(BaseModel):
    """Ground truth: [{"request_id": X-Request-Id of a scoring answer, "label": value, "row": index (0)}]."""

    labels: list[Any] = Field(description="at most 10000 items")


@router.post("/{env}/{name}/labels", status_code=201)
async def post_labels(
    env: str,
    name: str,
    body: LabelsRequest,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    posted = await asyncio.to_thread(monitoring.post_labels, platform, principal, env, name, body.labels)
    return {"deployment": posted.deployment, "environment": posted.environment, "accepted": posted.accepted}


# The report reads Parquet files and the registry: a worker thread.
@router.get("/{env}/{name}/monitor")
async def monitor(
    env: str,
    name: str,
    window: str = "24h",
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    report = await asyncio.to_thread(monitoring.monitor, platform, env, name, window=window)
    return report.to_dict()
