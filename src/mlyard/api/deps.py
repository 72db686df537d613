"""Request dependencies: the platform handle and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from mlyard.services.auth import Principal, authenticate_header
from mlyard.services.platform import Platform

# Ids and offsets are 64-bit integers in the database: a larger number in a path or query is refused (422)
# instead of overflowing the database driver.
INT64_MAX = 2**63 - 1
RunId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a run's id")]
JobId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a job's id")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="entries after this id")]


# Dependencies that only read the request or check a scope are coroutines: FastAPI runs a plain function
# dependency in its thread pool, one hand-off (and back) per dependency and request. The principal's lookup
# reads the database, so it stays a plain function.


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def current_principal(request: Request, platform: Platform = Depends(get_platform)) -> Principal:
    addr = request.client.host if request.client else ""
    return authenticate_header(platform, request.headers.get("authorization"), remote_addr=addr)


def requires(scope: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates and checks one scope (403 when missing)."""

    async def _check(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(scope)
        return principal

    return _check
