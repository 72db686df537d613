"""Pipelines and their runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from mlyard.api.deps import RunId, get_platform, requires
from mlyard.api.schemas import ApprovalDecision, PermitRequest, PipelineCreate, RunRequest, VariableSet
from mlyard.ci import states
from mlyard.services import jobs, pipelines, resources, runs
from mlyard.services import run_logs as run_logs_service
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.views import RunTests, RunView

router = APIRouter(tags=["pipelines"])


@router.get("/pipelines")
def list_pipelines(
    folder: str | None = None,
    repo: str | None = None,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    return [pipeline.to_dict() for pipeline in pipelines.list_pipelines(platform, folder=folder, repo=repo)]


@router.post("/pipelines", status_code=201)
def create_pipeline(
    body: PipelineCreate,
    principal: Principal = Depends(requires("repo:write")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return pipelines.create_pipeline(
        platform, principal, name=body.name, repo=body.repo, yaml_path=body.yaml, folder=body.folder
    ).to_dict()


@router.get("/pipelines/{name}")
def show_pipeline(
    name: str, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return pipelines.show_pipeline(platform, name).to_dict()


@router.delete("/pipelines/{name}")
def delete_pipeline(
    name: str, principal: Principal = Depends(requires("repo:write")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return pipelines.delete_pipeline(platform, principal, name).to_dict()


@router.post("/pipelines/{name}/runs", status_code=201)
def run_pipeline(
    name: str,
    body: RunRequest,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return runs.queue_manual(
        platform,
        principal,
        name,
        branch=body.branch,
        commit=body.commit,
        parameters=body.parameters,
        variables=body.variables,
    ).to_dict()


@router.put("/pipelines/{name}/variables/{variable}")
def set_variable(
    name: str,
    variable: str,
    body: VariableSet,
    principal: Principal = Depends(requires("repo:write")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return pipelines.set_variable(platform, principal, name, variable, body.value, secret=body.secret).to_dict()


@router.delete("/pipelines/{name}/variables/{variable}")
def delete_variable(
    name: str,
    variable: str,
    principal: Principal = Depends(requires("repo:write")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return pipelines.delete_variable(platform, principal, name, variable).to_dict()


@router.post("/pipelines/{name}/permissions")
def permit(
    name: str,
    body: PermitRequest,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    result = resources.permit_pipeline(platform, principal, name, body.resource)
    if platform.orchestrator is not None:
        platform.orchestrator.notify()
    return result


@router.post("/pipelines/{name}/schedules/run")
def run_schedules(
    name: str,
    schedule: str | None = None,
    principal: Principal = Depends(requires("admin")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    """Admin/testing hook: the pipeline's schedules (or the one named) fire now, as if due."""
    fires = pipelines.run_schedules(platform, principal, name, schedule)
    return {"fires": [asdict(fire) for fire in fires]}


@router.get("/runs")
def list_runs(
    pipeline: str | None = None,
    state: str | None = None,
    limit: int = 50,
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    found = runs.list_runs(platform, pipeline=pipeline, state=state, limit=min(max(limit, 1), 1000))
    return [run.to_dict() for run in found]


MAX_RUN_WAIT_SECONDS = 60.0
RUN_WAIT_POLL_SECONDS = 0.5  # when the waiters' limit is reached, a waiting request looks again this often
FOLLOW_POLL_SECONDS = 0.25  # how often a followed log looks for new lines (the run's end wakes it)


@router.get("/runs/{run_id}")
async def show_run(
    run_id: RunId,
    wait: float = Query(0.0, ge=0.0, le=MAX_RUN_WAIT_SECONDS, description="seconds to wait for the run to end"),
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    """The run; with `wait=S`, answered when the run has ended or after S seconds, whichever comes first
    (the scheduler wakes the request when a run ends: no polling needed)."""
    return (await _run_when_final(platform, run_id, wait)).to_dict()


@contextlib.contextmanager
def _run_ends(platform: Platform) -> Iterator[asyncio.Event | None]:
    """An event the scheduler sets (from its thread) whenever a run ends, while the block runs; None when there
    is no scheduler here or too many waiters: the caller polls instead."""
    ends = getattr(platform.orchestrator, "run_ends", None)
    loop = asyncio.get_running_loop()
    event = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the request's loop is closed: nobody waits any more
            loop.call_soon_threadsafe(event.set)

    unsubscribe = ends.subscribe(wake) if ends is not None else None
    try:
        yield event if unsubscribe is not None else None
    finally:
        if unsubscribe is not None:
            unsubscribe()


async def _run_when_final(platform: Platform, run_id: int, seconds: float) -> RunView:
    """The run's view once it has ended or `seconds` have passed. Between wakes only its state is read (one
    query; the whole view is a query per table of the run's tree, ~6x the CPU): the scheduler wakes every waiter
    when any run ends, and a run that is not this one changes nothing here."""
    if seconds <= 0:
        return await asyncio.to_thread(runs.show_run, platform, run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with _run_ends(platform) as ended:
        while True:
            if ended is not None:
                ended.clear()  # a run ending from now on wakes the wait below
            view = await asyncio.to_thread(_view_if_ended, platform, run_id, loop.time() >= deadline)
            if view is not None:
                return view
            remaining = max(deadline - loop.time(), 0.0)  # 0: the next turn answers with the run as it is
            if ended is None:
                await asyncio.sleep(min(remaining, RUN_WAIT_POLL_SECONDS))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), remaining)


def _view_if_ended(platform: Platform, run_id: int, anyway: bool) -> RunView | None:
    """The run's view when it has ended (or `anyway`), else None after reading its state only (NotFound: 404)."""
    if anyway or states.is_final(runs.run_state(platform, run_id)):
        return runs.show_run(platform, run_id)
    return None


@router.post("/runs/{run_id}/cancel")
def cancel_run(
    run_id: RunId, principal: Principal = Depends(requires("pipelines:run")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return runs.cancel_run(platform, principal, run_id).to_dict()


@router.post("/runs/{run_id}/permit")
def permit_run(
    run_id: RunId, principal: Principal = Depends(requires("admin")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return runs.permit_run(platform, principal, run_id).to_dict()


@router.post("/runs/{run_id}/approve")
def approve_run(
    run_id: RunId,
    body: ApprovalDecision,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return runs.decide_approval(platform, principal, run_id, approve=True, comment=body.comment).to_dict()


@router.post("/runs/{run_id}/reject")
def reject_run(
    run_id: RunId,
    body: ApprovalDecision,
    principal: Principal = Depends(requires("pipelines:run")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    return runs.decide_approval(platform, principal, run_id, approve=False, comment=body.comment).to_dict()


@router.get("/runs/{run_id}/artifacts")
def list_artifacts(
    run_id: RunId, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> list[dict[str, Any]]:
    runs.show_run(platform, run_id)
    return jobs.list_artifacts(platform, run_id)


@router.get("/runs/{run_id}/artifacts/{name}")
def get_artifact(
    run_id: RunId, name: str, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> FileResponse:
    return FileResponse(jobs.artifact_file(platform, run_id, name), media_type="application/gzip")


@router.get("/runs/{run_id}/tests")
def run_tests(
    run_id: RunId, _: Principal = Depends(requires("repo:read")), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return RunTests(run=run_id, tests=runs.show_run(platform, run_id).tests).to_dict()


@router.get("/runs/{run_id}/logs")
async def run_logs(
    run_id: RunId,
    request: Request,
    step: str | None = None,
    follow: bool = False,
    format: Literal["text", "json"] = "text",
    _: Principal = Depends(requires("repo:read")),
    platform: Platform = Depends(get_platform),
) -> Response:
    """The run's logs as text in sections (`## job / step`); `format=json`: jobs, steps and lines
    (`RunLogs`); with follow=true a live text stream until the run finishes."""
    if format == "json":
        document = await asyncio.to_thread(run_logs_service.read_document, platform, run_id, step=step)
        return JSONResponse(document.to_dict())
    if not follow:
        text = await asyncio.to_thread(run_logs_service.read_text, platform, run_id, step=step)
        return Response(text, media_type="text/plain; charset=utf-8")
    await asyncio.to_thread(runs.step_logs, platform, run_id, step=step)  # 404 early for a bad run or step
    return StreamingResponse(_follow(platform, run_id, step, request), media_type="text/plain; charset=utf-8")


async def _follow(platform: Platform, run_id: int, step: str | None, request: Request) -> AsyncIterator[bytes]:
    """New log lines every FOLLOW_POLL_SECONDS; the end of the run is sent as soon as it ends (the scheduler
    wakes the stream, as it wakes `GET /runs/{id}?wait=S`)."""
    follower = run_logs_service.Follower()
    with _run_ends(platform) as ended:  # None: too many waiters, just poll
        while True:
            if ended is not None:
                ended.clear()  # a run ending from now on wakes the wait below
            final = states.is_final(await asyncio.to_thread(runs.run_state, platform, run_id))
            found = await asyncio.to_thread(run_logs_service.sections, platform, run_id, step=step)
            for text in follower.poll(found):
                yield text.encode()
            if final or await request.is_disconnected():
                state = await asyncio.to_thread(runs.run_state, platform, run_id)
                yield f"## run {run_id} {state}\n".encode()
                return
            if ended is None:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), FOLLOW_POLL_SECONDS)
