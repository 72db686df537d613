"""Models of each environment's registry."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from mlyard.api.deps import get_platform, requires
from mlyard.services import models
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(prefix="/models", tags=["models"])


class StageChange(BaseModel):
    stage: str
    reason: str = ""


class Rollback(BaseModel):
    reason: str = ""


class Tags(BaseModel):
    tags: dict[str, str]


# MLflow calls block (SQLite, file locks): run them in a worker thread.
@router.get("")
async def list_models(
    env: str = "dev", _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(models.list_models, platform, env)


@router.get("/{name}")
async def show_model(
    name: str,
    env: str = "dev",
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(models.show_model, platform, env, name)


@router.post("/{name}/versions/{version}/stage")
async def stage(
    name: str,
    version: str,
    body: StageChange,
    env: str = "dev",
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(
        models.stage, platform, principal, env, name, version, body.stage, reason=body.reason
    )


@router.get("/{name}/history")
async def history(
    name: str,
    env: str = "dev",
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(models.history, platform, env, name)


@router.post("/{name}/rollback")
async def rollback(
    name: str,
    body: Rollback,
    env: str = "dev",
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(models.rollback, platform, principal, env, name, reason=body.reason)


@router.get("/{name}/version")
async def resolve_version(
    name: str,
    env: str = "dev",
    version: str | None = None,
    stage: str | None = None,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    """The version with this number, or the one in a stage (default Production)."""
    return await asyncio.to_thread(models.version_for, platform, env, name, version=version, stage=stage)


@router.post("/{name}/versions/{version}/tags")
async def tag_version(
    name: str,
    version: str,
    body: Tags,
    env: str = "dev",
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(models.tag_version, platform, principal, env, name, version, body.tags)
