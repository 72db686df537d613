"""Jobs on deployed workspace code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from mlyard.api.deps import JobId, get_platform, requires
from mlyard.ci import logs, states
from mlyard.services import workspace_jobs
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobRequest(BaseModel):
    env: str
    app: str
    branch: str = "master"
    entrypoint: str
    args: list[str] = Field(default_factory=list)


@router.post("", status_code=201)
async def run_job(
    body: JobRequest,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return await asyncio.to_thread(
        workspace_jobs.start,
        platform,
        principal,
        env=body.env,
        app=body.app,
        branch=body.branch,
        entrypoint=body.entrypoint,
        args=body.args,
    )


@router.get("")
def list_jobs(
    env: str | None = None,
    app: str | None = None,
    limit: int = 50,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    return workspace_jobs.list_jobs(platform, env=env, app=app, limit=min(max(limit, 1), 1000))


@router.get("/{job_id}")
def show_job(
    job_id: JobId, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return workspace_jobs.get(platform, job_id)


@router.post("/{job_id}/cancel")
def cancel_job(
    job_id: JobId, principal: Principal = Depends(requires("pipelines:run")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    """Cancel a job: a queued one at once, a running one within half a second (its process group is stopped)."""
    return workspace_jobs.cancel(platform, principal, job_id)


@router.get("/{job_id}/logs")
async def job_logs(
    job_id: JobId,
    request: Request,
    follow: bool = False,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> Response:
    """The job's log; with follow=true a live stream until the job ends."""
    workspace_jobs.get(platform, job_id)
    path = workspace_jobs.log_path(platform, job_id)
    if not follow:
        text, _offset = logs.read(path)
        return Response(text, media_type="text/plain; charset=utf-8")
    return StreamingResponse(_follow(platform, job_id, request), media_type="text/plain; charset=utf-8")


async def _follow(platform: Platform, job_id: int, request: Request) -> AsyncIterator[bytes]:
    path = workspace_jobs.log_path(platform, job_id)
    offset = 0
    while True:
        job = await asyncio.to_thread(workspace_jobs.get, platform, job_id)
        text, offset = logs.read(path, offset)
        if text:
            yield text.encode()
        if states.is_final(job["state"]) or await request.is_disconnected():
            tail, offset = logs.read(path, offset)
            if tail:
                yield tail.encode()
            yield f"## job {job_id} {job['state']}\n".encode()
            return
        await asyncio.sleep(0.2)
