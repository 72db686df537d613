"""Users, tokens, the caller's identity and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlyard.api.deps import current_principal, get_platform, requires
from mlyard.api.schemas import TokenCreate, UserCreate
from mlyard.errors import PermissionDenied
from mlyard.services import audit, auth
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(tags=["identity"])


@router.get("/me")
def me(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return {
        "username": principal.username,
        "is_admin": principal.is_admin,
        "token_id": principal.token_id,
        "scopes": sorted(principal.scopes),
    }


@router.post("/users", status_code=201)
def create_user(
    body: UserCreate, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return auth.create_user(platform, body.username, is_admin=body.admin, actor=principal.username).to_dict()


@router.get("/users")
def list_users(
    _: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    return [user.to_dict() for user in auth.list_users(platform)]


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenCreate, principal: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    """Create a PAT. A token can only mint tokens with scopes it holds itself and that expire no later than
    itself; admins may mint for others."""
    username = body.user or principal.username
    if username != principal.username:
        principal.require("admin")
    scopes = auth.check_scopes(body.scopes)
    missing = [s for s in scopes if not principal.has(s)]
    if missing:
        raise PermissionDenied(f"cannot create a token with scope '{missing[0]}': the token you use lacks it")
    expires = auth.parse_duration(body.expires_in) if body.expires_in else None
    return auth.create_token(
        platform,
        username=username,
        name=body.name,
        scopes=scopes,
        expires_in=expires,
        not_after=principal.expires_at,
        actor=principal.username,
    ).to_dict()


@router.get("/tokens")
def list_tokens(
    all: bool = False, principal: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    if all:
        principal.require("admin")
    return [token.to_dict() for token in auth.list_tokens(platform, principal, all_users=all)]


@router.delete("/tokens/{token_ref}")
def revoke_token(
    token_ref: str, principal: Principal = Depends(current_principal), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return auth.revoke_token(platform, principal, token_ref).to_dict()


@router.get("/audit")
def audit_log(
    limit: int = 100,
    action: str | None = None,
    _: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    return audit.list_entries(platform, limit=min(max(limit, 1), 1000), action=action)
