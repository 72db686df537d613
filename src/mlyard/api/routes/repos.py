"""Hosted repositories and their push events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlyard.api.deps import Offset, get_platform, requires
from mlyard.api.schemas import RepoCreate, RepoUpdate
from mlyard.services import events, repos
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(prefix="/repos", tags=["repos"])


@router.get("")
def list_repos(
    _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return [repo.to_dict() for repo in repos.list_repos(platform)]


@router.post("", status_code=201)
def create_repo(
    body: RepoCreate, principal: Principal = Depends(requires("repo:write")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return repos.create_repo(
        platform, principal, body.name, default_branch_name=body.default_branch, allow_force_push=body.allow_force_push
    ).to_dict()


@router.get("/{name}")
def show_repo(
    name: str, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return repos.show_repo(platform, name).to_dict()


@router.patch("/{name}")
def update_repo(
    name: str,
    body: RepoUpdate,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return repos.update_repo(
        platform, principal, name, allow_force_push=body.allow_force_push, default_branch_name=body.default_branch
    ).to_dict()


@router.delete("/{name}")
def delete_repo(
    name: str, principal: Principal = Depends(requires("repo:write")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return repos.delete_repo(platform, principal, name).to_dict()


@router.get("/{name}/events")
def list_events(
    name: str,
    after: Offset = 0,
    limit: int = 100,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    repos.get_repo(platform, name)
    return events.list_events(platform, name, after=after, limit=min(max(limit, 1), 1000))
