"""Request dependencies: the platform handle and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from mlyard.services.auth import Principal, authenticate_header
from mlyard.services.platform import Platform

# Ids and offsets are 64-bit integers in the database: a larger number in a path or query is refused (422)
# instead of overflowing the database driver.
INT64_MAX = 2**63 - 1
RunId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a run's id")]
JobId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a job's id")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="entries after this id")]


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
