"""The agent API: claim jobs (agent token), then report on a job with that job's own token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from mlyard.api.deps import JobId, get_platform, requires
from mlyard.api.schemas import ClaimRequest, CoverageReport, LogBatch, Outcome, ReportBatch, StepReport, StepReportItem
from mlyard.ci.orchestrator import Orchestrator
from mlyard.protocol import CoverageSummary, JobOutcome
from mlyard.services import jobs
from mlyard.services.auth import LOCAL_AGENT_USER, Principal
from mlyard.services.platform import Platform
from mlyard.services.principals import JobRef

router = APIRouter(prefix="/agent", tags=["agent"])
WRITE_BUFFER = 1024**2  # an upload is written to disk in pieces of this size


def _orchestrator(platform: Platform) -> Orchestrator:
    orchestrator: Orchestrator = platform.orchestrator
    return orchestrator


async def job_auth(job_id: JobId, request: Request, platform: Platform = Depends(get_platform)) -> JobRef:
    """The job whose token the request carries: from memory when seen a moment ago (no thread hand-off)."""
    header = request.headers.get("authorization")
    remembered = jobs.remembered_job(platform, header, job_id)
    if remembered is not None:
        return remembered
    return await run_in_threadpool(jobs.authenticate_job, platform, header, job_id)


@router.post("/claim", response_model=None)
async def claim(
    request: Request, body: ClaimRequest, who: Principal = Depends(requires("agent")),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any] | Response:  # fmt: skip
    """A job for the agent, or 204 after `wait` seconds. The claim waits in a thread of the pool; when the agent's
    connection closes meanwhile (it was killed or stopped), the claim ends without a job (`_hung_up`)."""
    local = who.username == LOCAL_AGENT_USER
    orchestrator = _orchestrator(platform)
    gone = threading.Event()
    watch = asyncio.create_task(_hung_up(request, gone, orchestrator.queue.wake_claims))
    try:
        spec = await asyncio.to_thread(
            jobs.claim, platform, orchestrator, body.agent, wait=body.wait, local=local, warm=body.warm, cancel=gone
        )
    finally:
        watch.cancel()
    return spec if spec is not None else Response(status_code=204)


async def _hung_up(request: Request, gone: threading.Event, wake: Callable[[], None]) -> None:
    """Set `gone` and `wake` the claims when the client disconnects: its request's body is read, so the next ASGI
    message is `http.disconnect` (uvicorn sends it when the connection closes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            wake()
            return


@router.post("/jobs/{job_id}/heartbeat")
def heartbeat(job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    return jobs.heartbeat(platform, job.id)


@router.post("/jobs/{job_id}/steps/{step_id}")
def report_step(
    step_id: str, body: StepReport, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return _update_step(platform, job, step_id, body)


def _update_step(platform: Platform, job: JobRef, step_id: str, body: StepReport) -> dict[str, Any]:
    return jobs.update_step(platform, job.id, step_id, state=body.state, result=body.result, issues=body.issues,
                            display_name=body.display_name)  # fmt: skip


@router.post("/jobs/{job_id}/logs")
def append_logs(
    body: LogBatch, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return {"written": jobs.append_logs(platform, job, body.step_id, body.lines)}


@router.post("/jobs/{job_id}/reports")
def report_batch(
    body: ReportBatch, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    """Several reports in one request (the agent sends what queued up while its previous request was under
    way), applied in order as the single requests would be; an error stops at that report (those before it
    are kept) and answers as that report alone would have."""
    written = 0
    for report in body.reports:
        if isinstance(report, StepReportItem):
            _update_step(platform, job, report.step_id, report)
        else:
            written += jobs.append_logs(platform, job, report.step_id, report.lines)
    return {"reports": len(body.reports), "written": written}


@router.put("/jobs/{job_id}/artifacts/{name}")
async def upload_artifact(
    name: str, request: Request, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    """Stream the body to disk; its size is bounded by `max_artifact_bytes` (api/limits.py answers 413)."""
    part = await asyncio.to_thread(jobs.begin_artifact, platform, job, name)
    size = 0
    try:
        with part.open("wb") as out:
            pending = bytearray()
            async for chunk in request.stream():
                size += len(chunk)
                pending += chunk
                if len(pending) >= WRITE_BUFFER:
                    await asyncio.to_thread(out.write, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(out.write, bytes(pending))
        return await asyncio.to_thread(jobs.store_artifact, platform, job, name, part, size)
    finally:
        part.unlink(missing_ok=True)


@router.get("/jobs/{job_id}/artifacts")
def list_artifacts(job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)) -> list[str]:
    """The names of the artifacts the job's run has published so far."""
    return [artifact["name"] for artifact in jobs.list_artifacts(platform, job.run_id)]


@router.get("/jobs/{job_id}/artifacts/{name}")
def download_artifact(
    name: str,
    run: int | None = None,
    job: JobRef = Depends(job_auth),
    platform: Platform = Depends(get_platform),
) -> FileResponse:
    """An artifact of the job's run, or (`run`) of the run of one of its pipeline resources."""
    run_id = job.run_id if run is None else jobs.resource_run(platform, job, run)
    return FileResponse(jobs.artifact_file(platform, run_id, name), media_type="application/gzip")


@router.post("/jobs/{job_id}/tests")
def publish_tests(
    summary: dict[str, Any], job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return jobs.store_tests(platform, job, summary)


@router.post("/jobs/{job_id}/coverage")
def publish_coverage(
    body: CoverageReport, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return jobs.store_coverage(platform, job, CoverageSummary(**body.model_dump()))


@router.post("/jobs/{job_id}/complete")
def complete(
    body: Outcome, job: JobRef = Depends(job_auth), platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    outcome = JobOutcome(**body.model_dump())
    return jobs.complete(platform, _orchestrator(platform), job.id, outcome)
