"""Runs: queue (manual and CI), list, show, cancel, permit, approve; logs, artifacts, test results."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.ci import sources, states
from mlyard.ci.logs import log_file
from mlyard.ci.runs import new_run
from mlyard.db.engine import transaction
from mlyard.db.tables import (
    CoverageResult,
    Pipeline,
    Repo,
    Run,
    RunArtifact,
    RunJob,
    RunStage,
    RunStep,
    TestResult,
)
from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.pipelines import PipelineError, resolve_parameters
from mlyard.pipelines.model import Parameter
from mlyard.protocol import Reason
from mlyard.services import audit, resources
from mlyard.services.auth import Principal
from mlyard.services.pipelines import get_row, run_brief, run_fields
from mlyard.services.platform import Platform
from mlyard.views import (
    ApprovalResult,
    JobView,
    PermitResult,
    RunBrief,
    RunCoverage,
    RunListItem,
    RunSummary,
    RunTestTotals,
    RunView,
    StageView,
    StepView,
)
from mlyard.views import state as as_state

log = logging.getLogger("mlyard.runs")


def queue_manual(
    platform: Platform,
    principal: Principal,
    pipeline: str,
    *,
    branch: str | None = None,
    commit: str | None = None,
    parameters: dict[str, Any] | None = None,
    variables: dict[str, str] | None = None,
) -> RunBrief:
    """Queue a run by hand (Build.Reason Manual); parameters are checked before anything is queued."""
    principal.require("pipelines:run")
    if branch and commit:
        raise InvalidInput("give --branch or --commit, not both")
    with transaction(platform.sessions) as session:
        row = get_row(session, pipeline)
        repo = session.scalars(select(Repo).where(Repo.name == row.repo)).one()
        pipeline_id, repo_name, yaml_path = row.id, row.repo, row.yaml_path
        ref = _branch_ref(branch or repo.default_branch)
    sha = sources.resolve_commit(platform, repo_name, commit or ref)
    return _queue(platform, principal, pipeline, pipeline_id, repo_name, yaml_path, ref, sha, parameters, variables)


def rerun(platform: Platform, principal: Principal, run_id: int) -> RunBrief:
    """Queue a new manual run of a run's pipeline on the same branch and commit, with the same parameters
    and queue-time variables (the web page's Rerun)."""
    principal.require("pipelines:run")
    with transaction(platform.sessions) as session:
        old = get_run_row(session, run_id)
        row = session.get(Pipeline, old.pipeline_id)
        if row is None:
            raise NotFound(f"the pipeline of run {run_id} was deleted")
        queued = (row.name, row.id, row.repo, row.yaml_path, old.source_branch, old.source_version)
        parameters, variables = dict(old.parameters or {}), dict(old.variables or {})
    name, pipeline_id, repo_name, yaml_path, ref, sha = queued
    return _queue(platform, principal, name, pipeline_id, repo_name, yaml_path, ref, sha, parameters, variables)


def declared_parameters(platform: Platform, pipeline: str, branch: str | None = None) -> tuple[Parameter, ...]:
    """The parameters the pipeline's YAML declares on `branch` (default: the repository's default branch),
    for a form; PipelineError when the file is invalid there."""
    with transaction(platform.sessions) as session:
        row = get_row(session, pipeline)
        repo = session.scalars(select(Repo).where(Repo.name == row.repo)).one()
        repo_name, yaml_path, ref = row.repo, row.yaml_path, _branch_ref(branch or repo.default_branch)
    sha = sources.resolve_commit(platform, repo_name, ref)
    return tuple(sources.load_at(platform, repo_name, sha, yaml_path).parameters)


def _queue(
    platform: Platform,
    principal: Principal,
    pipeline: str,
    pipeline_id: int,
    repo_name: str,
    yaml_path: str,
    ref: str,
    sha: str,
    parameters: dict[str, Any] | None,
    variables: dict[str, str] | None,
) -> RunBrief:
    loaded = sources.load_at(platform, repo_name, sha, yaml_path)
    try:
        values = resolve_parameters(loaded, parameters or {})
    except PipelineError as exc:  # a bad value given now is the caller's input error, not the file's
        problems = [d.message for d in exc.diagnostics]
        raise InvalidInput(
            f"invalid parameters for pipeline {pipeline!r}: " + "; ".join(problems), errors=problems
        ) from None
    for name in variables or {}:
        if not name.strip():
            raise InvalidInput("--var expects NAME=VALUE with a non-empty name")
    with transaction(platform.sessions) as session:
        run = new_run(
            session,
            pipeline_id,
            reason=Reason.MANUAL,
            ref=ref,
            sha=sha,
            requested_for=principal.username,
            parameters=_plain(values),
            variables=dict(variables or {}),
        )
        audit.record(session, "run.queued", actor=principal.username, target=f"{pipeline}#{run.number}")
        session.flush()
        result = run_brief(run)
    _notify(platform, result.id)
    return result


def _branch_ref(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(values, default=str))


def on_push(platform: Platform, events: list[dict[str, Any]]) -> list[int]:
    """A push was recorded: wake the orchestrator, which triggers it through the outbox (ci/triggers).

    Returns no run ids: the runs are created asynchronously, so the git client is not kept waiting.
    """
    if events:
        _notify(platform)
    return []


def _notify(platform: Platform, run_id: int | None = None) -> None:
    """Wake the scheduler for run `run_id` (None: for every run and the pending pushes)."""
    if platform.orchestrator is not None:
        platform.orchestrator.notify(run_id)


def get_run_row(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found; list runs with `mlyard runs list`")
    return run


def list_runs(
    platform: Platform, *, pipeline: str | None = None, state: str | None = None, limit: int = 50
) -> list[RunSummary]:
    with transaction(platform.sessions) as session:
        query = select(Run, Pipeline.name).join(Pipeline).order_by(Run.id.desc()).limit(limit)
        if pipeline:
            query = query.where(Pipeline.id == get_row(session, pipeline).id)
        if state:
            query = query.where(Run.state == state)
        return [
            RunSummary(**run_fields(r), pipeline=name, message=r.message) for r, name in session.execute(query)
        ]


MAX_PAGE = 200  # runs in one page of `search_runs`


def search_runs(
    platform: Platform,
    *,
    pipeline: str | None = None,
    branch: str | None = None,
    state: str | None = None,
    reason: str | None = None,
    requested_for: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[RunListItem], bool]:
    """Runs newest first, filtered (every filter exact; a branch with or without `refs/heads/`), the page
    before run id `before`; with whether older runs remain (for a "next page" link)."""
    limit = min(max(limit, 1), MAX_PAGE)
    with transaction(platform.sessions) as session:
        query = select(Run, Pipeline.name).join(Pipeline).order_by(Run.id.desc()).limit(limit + 1)
        if pipeline:
            query = query.where(Pipeline.id == get_row(session, pipeline).id)
        if branch:
            query = query.where(Run.source_branch == _branch_ref(branch))
        if state:
            query = query.where(Run.state == state)
        if reason:
            query = query.where(Run.reason == reason)
        if requested_for:
            query = query.where(Run.requested_for == requested_for)
        if before is not None:
            query = query.where(Run.id < before)
        rows = list(session.execute(query))
        found = [_list_item(r, name) for r, name in rows[:limit]]
        return found, len(rows) > limit


def _list_item(run: Run, pipeline: str) -> RunListItem:
    return RunListItem(
        **run_fields(run),
        pipeline=pipeline,
        message=run.message,
        requested_for=run.requested_for,
        started_at=_iso(run.started_at),
        duration_seconds=_duration(run.started_at, run.finished_at),
    )


def show_run(platform: Platform, run_id: int) -> RunView:
    """The run with its tree of stages, jobs and steps, states and durations."""
    with transaction(platform.sessions) as session:
        run = get_run_row(session, run_id)
        pipeline = session.get(Pipeline, run.pipeline_id)
        stages = list(session.scalars(select(RunStage).where(RunStage.run_id == run.id).order_by(RunStage.position)))
        jobs = list(session.scalars(select(RunJob).where(RunJob.run_id == run.id).order_by(RunJob.position)))
        steps = (
            list(
                session.scalars(
                    select(RunStep)
                    .where(RunStep.job_id.in_([j.id for j in jobs]))
                    .order_by(RunStep.job_id, RunStep.position)
                )
            )
            if jobs
            else []
        )
        tests = [t.summary for t in session.scalars(select(TestResult).where(TestResult.run_id == run.id))]
        artifacts = [a.name for a in session.scalars(select(RunArtifact).where(RunArtifact.run_id == run.id))]
        covered = session.scalars(select(CoverageResult).where(CoverageResult.run_id == run.id))
        coverage = combine_coverage(list(covered))
        return RunView(
            **run_fields(run),
            pipeline=pipeline.name if pipeline else "",
            message=run.message,
            requested_for=run.requested_for,
            parameters=run.parameters,
            tags=run.tags,
            waiting_for=run.waiting_for,
            started_at=_iso(run.started_at),
            duration_seconds=_duration(run.started_at, run.finished_at),
            url=f"{platform.settings.url}/api/v1/runs/{run.id}",
            web_url=f"{platform.settings.url}/runs/{run.id}",
            artifacts=artifacts,
            tests=combine_tests(tests),
            coverage=coverage,
            stages=[
                StageView(
                    **_node(stage),
                    jobs=[
                        JobView(
                            **_node(job),
                            id=job.id,
                            kind=job.kind,
                            agent=job.agent,
                            environment=job.environment,
                            approval=job.approval,
                            outputs=job.outputs,
                            steps=[_step(s) for s in steps if s.job_id == job.id],
                        )
                        for job in jobs
                        if job.stage == stage.name
                    ],
                )
                for stage in stages
            ],
        )


def _node(row: RunStage | RunJob) -> dict[str, Any]:
    """The fields a stage and a job share, as keyword arguments of their views."""
    return {
        "name": row.name,
        "display_name": row.display_name,
        "state": as_state(row.state),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "duration_seconds": _duration(row.started_at, row.finished_at),
        "message": row.message,
    }


def _step(row: RunStep) -> StepView:
    return StepView(
        key=row.step_key,
        name=row.name,
        display_name=row.display_name,
        state=as_state(row.state),
        issues=row.issues,
        started_at=_iso(row.started_at),
        duration_seconds=_duration(row.started_at, row.finished_at),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or datetime.now(UTC)) - start).total_seconds(), 3)


def combine_tests(summaries: list[dict[str, Any]]) -> RunTestTotals | None:
    if not summaries:
        return None
    return RunTestTotals(
        **{key: sum(int(s.get(key, 0)) for s in summaries) for key in ("total", "passed", "failed", "skipped")},
        failures=[f for s in summaries for f in s.get("failures", [])],
        runs=len(summaries),
    )


def combine_coverage(rows: list[CoverageResult]) -> RunCoverage | None:
    if not rows:
        return None
    lines = (sum(r.lines_covered for r in rows), sum(r.lines_valid for r in rows))
    branches = (sum(r.branches_covered for r in rows), sum(r.branches_valid for r in rows))
    return RunCoverage(
        lines_covered=lines[0], lines_valid=lines[1], branches_covered=branches[0], branches_valid=branches[1],
        line_rate=lines[0] / lines[1] if lines[1] else None,
        branch_rate=branches[0] / branches[1] if branches[1] else None, reports=len(rows),
    )  # fmt: skip


def cancel_run(platform: Platform, principal: Principal, run_id: int) -> RunView:
    principal.require("pipelines:run")
    with transaction(platform.sessions) as session:
        run = get_run_row(session, run_id)
        if states.is_final(run.state):
            raise Conflict(f"run {run_id} already finished ({run.state})")
        run.cancel_requested = True
        audit.record(session, "run.cancel", actor=principal.username, target=str(run_id))
    _notify(platform)
    return show_run(platform, run_id)


def permit_run(platform: Platform, principal: Principal, run_id: int) -> PermitResult:
    """Grant every resource the run waits for (remembered for its pipeline)."""
    principal.require("admin")
    with transaction(platform.sessions) as session:
        run = get_run_row(session, run_id)
        granted = []
        for item in run.waiting_for:
            kind, name = resources.parse_resource(item)
            if resources.grant(session, run.pipeline_id, kind, name, actor=principal.username):
                granted.append(item)
    _notify(platform)
    return PermitResult(run=run_id, granted=granted)


def decide_approval(
    platform: Platform, principal: Principal, run_id: int, *, approve: bool, comment: str = ""
) -> ApprovalResult:
    principal.require("pipelines:run")
    with transaction(platform.sessions) as session:
        run = get_run_row(session, run_id)
        pending = list(session.scalars(select(RunJob).where(RunJob.run_id == run.id, RunJob.approval == "pending")))
        if not pending:
            raise Conflict(f"run {run_id} has no deployment waiting for approval")
        for job in pending:
            job.approval = "approved" if approve else "rejected"
            job.message = f"{'approved' if approve else 'rejected'} by {principal.username}" + (
                f": {comment}" if comment else ""
            )
        audit.record(
            session,
            "run.approved" if approve else "run.rejected",
            actor=principal.username,
            target=str(run_id),
            comment=comment,
        )
    _notify(platform)
    return ApprovalResult(run=run_id, jobs=[j.name for j in pending], approved=approve)


def step_logs(platform: Platform, run_id: int, *, step: str | None = None) -> list[dict[str, Any]]:
    """Log files of a run in order: [{job, step, path}] (a step matched by key, name or display name)."""
    with transaction(platform.sessions) as session:
        run = get_run_row(session, run_id)
        jobs = list(session.scalars(select(RunJob).where(RunJob.run_id == run.id).order_by(RunJob.position)))
        found = []
        for job in jobs:
            job_log = log_file(platform.settings.home, run.id, job.id, None)
            found.append({"job": job.name, "step": None, "path": job_log})
            for s in session.scalars(select(RunStep).where(RunStep.job_id == job.id).order_by(RunStep.position)):
                found.append(
                    {
                        "job": job.name,
                        "step": s.display_name,
                        "key": s.step_key,
                        "name": s.name,
                        "path": log_file(platform.settings.home, run.id, job.id, s.step_key),
                    }
                )
    if step:
        wanted = [f for f in found if step in (f.get("key"), f.get("name"), f.get("step"))]
        if not wanted:
            raise NotFound(f"run {run_id} has no step {step!r}; see the steps with `mlyard runs show {run_id}`")
        return wanted
    return found


def run_state(platform: Platform, run_id: int) -> str:
    with transaction(platform.sessions) as session:
        return get_run_row(session, run_id).state
