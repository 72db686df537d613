"""Request dependencies: the platform handle and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from mlyard.services.auth import Principal, authenticate_header, remembered_header
from mlyard.services.platform import Platform

# Ids and offsets are 64-bit integers in the database: a larger number in a path or query is refused (422)
# instead of overflowing the database driver.
INT64_MAX = 2**63 - 1
RunId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a run's id")]
JobId = Annotated[int, Path(ge=0, le=INT64_MAX, description="a job's id")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="entries after this id")]


# The dependencies are coroutines: FastAPI runs a plain function dependency in its thread pool, one hand-off (and
# back) per dependency and request. The principal of a token that worked a moment ago is in memory; only its
# database lookup goes to the thread pool.


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def authenticated(platform: Platform, header: str | None, remote_addr: str) -> Principal:
    """The principal behind an Authorization header: a token that worked a moment ago from memory, on the event
    loop; any other looked up in the thread pool."""
    remembered = remembered_header(platform, header, remote_addr=remote_addr)
    if remembered is not None:
        return remembered
    return await run_in_threadpool(authenticate_header, platform, header, remote_addr=remote_addr)


async def current_principal(request: Request, platform: Platform = Depends(get_platform)) -> Principal:
    addr = request.client.host if request.client else ""
    return await authenticated(platform, request.headers.get("authorization"), addr)


def requires(scope: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates and checks one scope (403 when missing)."""

    async def _check(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(scope)
        return principal

    return _check
