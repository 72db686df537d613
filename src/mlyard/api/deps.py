"""Request dependencies: the platform handle and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from mlyard.services.auth import Principal, authenticate_header
from mlyard.services.platform import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def current_principal(request: Request, platform: Platform = Depends(get_platform)) -> Principal:
    addr = request.client.host if request.client else ""
    return authenticate_header(platform, request.headers.get("authorization"), remote_addr=addr)


def requires(scope: str) -> Callable[[Principal], Principal]:
    """A dependency that authenticates and checks one scope (403 when missing)."""

    def _check(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(scope)
        return principal

    return _check
