"""The agent-facing side of runs: claim a job, report steps, logs, artifacts, tests, completion.

Claims, leases and the secret values of running jobs belong to the job queue (`mlyard.ci.queue.JobQueue`,
held by the orchestrator); these functions are the use cases around it.

A claimed job gets its own access token (`myj_...`, stored hashed): the agent uses it for every
call about that job and for the git checkout of the run's commit. It stops working when the job ends.
"""

from __future__ import annotations

import re
import secrets as random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.ci import logs, plan_store, states
from mlyard.ci.orchestrator import Orchestrator, run_facts
from mlyard.ci.queue import JOB_TOKEN_PREFIX, JobQueue, secret_values, token_hash
from mlyard.ci.scheduler import job_dependencies, run_variables, stage_job_dependencies
from mlyard.db.engine import transaction
from mlyard.db.tables import CoverageResult, Pipeline, Run, RunArtifact, RunJob, RunStep, TestResult
from mlyard.errors import AuthenticationError, Conflict, InvalidInput, NotFound
from mlyard.pipelines.expressions import ExpressionContext
from mlyard.pipelines.job_variables import GroupValues, resolve_job_variables
from mlyard.pipelines.model import Variable, VariableGroup
from mlyard.pipelines.predefined import JobFacts, job_variables
from mlyard.pipelines.tasks import connection_input
from mlyard.protocol import Connection as ConnectionSpec
from mlyard.protocol import CoverageSummary, JobOutcome, JobSpec, Repository, StepSpec, agent_name_problem
from mlyard.services import pipelines, resources, secrets
from mlyard.services.platform import Platform
from mlyard.services.principals import JobIdentity, JobRef

_ARTIFACT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")


def _queue(platform: Platform) -> JobQueue:
    """The job queue of the server process (the orchestrator's)."""
    orchestrator: Orchestrator = platform.orchestrator
    return orchestrator.queue


def claim(
    platform: Platform, orchestrator: Orchestrator, agent: str, *, wait: float = 0, local: bool = False,
    warm: bool = False, cancel: threading.Event | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """The oldest claimable job as a JobSpec dict, waiting up to `wait` seconds for one; none once `cancel` is set
    (the agent hung up: JobQueue.claim).

    `local` says the caller is one of the server's own agents: only they may use the names `local-N`,
    so that a restarted server fails exactly the jobs that died with it. `warm`: the agent has a warm step
    sandbox ready (a job queued while it waits goes to it first: JobQueue.claim).
    """
    problem = agent_name_problem(agent, local=local)
    if problem:
        raise InvalidInput(f"{problem} (`mlyard agent --name`)")
    spec = orchestrator.queue.claim(
        agent,
        lambda session, job, token: build_spec(platform, session, job, token),
        wait=wait,
        stop=orchestrator.stop_event,
        warm=warm,
        cancel=cancel,
    )
    return spec.to_dict() if spec is not None else None


def _secrets_of(platform: Platform, job: JobIdentity) -> set[str]:
    """The secret values of a running job (recomputed for a job claimed before a server restart)."""

    def compute(job_id: int) -> tuple[set[str], bool]:
        with platform.sessions() as session:
            row = session.get(RunJob, job_id)
            if row is None:
                return set(), False
            return secret_values(build_spec(platform, session, row, "")), row.state == states.RUNNING

    return _queue(platform).secrets_of(job.id, compute)


def _masked(value: Any, hidden: set[str]) -> Any:
    """``value`` with the secrets in ``hidden`` masked in every string (nested dicts, keys too, and lists)."""
    if isinstance(value, str):
        return logs.mask(value, hidden)
    if isinstance(value, dict):
        return {_masked(key, hidden): _masked(item, hidden) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, hidden) for item in value]
    return value


def build_spec(platform: Platform, session: Session, job: RunJob, token: str) -> JobSpec:
    run = session.get(Run, job.run_id)
    assert run is not None
    pipeline = session.get(Pipeline, run.pipeline_id)
    assert pipeline is not None
    plan = plan_store.job_plan(run.plan or {}, job.stage, job.name)
    (stage,) = plan.stages
    (planned,) = stage.jobs
    plain, hidden = pipelines.variables_for_run(platform, session, pipeline.id)
    plain.update(run.variables)
    siblings = list(session.scalars(select(RunJob).where(RunJob.run_id == run.id)))
    by_stage: dict[str, list[RunJob]] = {}
    for sibling in siblings:
        by_stage.setdefault(sibling.stage, []).append(sibling)
    legs = plan_store.legs(run.plan or {})
    ctx = ExpressionContext(
        variables={**run_variables(run), **plain},
        dependencies=job_dependencies(
            [j for j in by_stage.get(job.stage, []) if j.name in job.depends_on],
            {name: leg for (in_stage, name), leg in legs.items() if in_stage == job.stage},
        ),
        stage_dependencies=stage_job_dependencies(by_stage, job.stage, legs),
    )
    scopes = [plan.variables, stage.variables, planned.variables]
    names = {entry.group for scope in scopes for entry in scope if isinstance(entry, VariableGroup)}
    groups = {name: GroupValues(*resources.group_values(platform, session, name)) for name in sorted(names)}
    resolved = resolve_job_variables(scopes, plain=plain, secret=hidden, groups=groups, context=ctx)
    job_facts = JobFacts(
        job_id=job.id,
        stage=job.stage,
        name=job.name,
        display_name=job.display_name,
        attempt=job.attempt,
        stage_display_name=stage.display_name or job.stage,
        kind=job.kind,
        environment=job.environment,
        build_number=run.build_number,
        started_at=(run.started_at or datetime.now(UTC)).isoformat(),
        phase=planned.leg.phase if planned.leg else job.name,
        position=planned.leg.position if planned.leg else 1,
        total=planned.leg.total if planned.leg else 1,
    )
    predefined = job_variables(run_facts(platform, run, pipeline), job_facts)
    connections = {}
    for step in planned.steps:
        connection = connection_input(step.task)
        name = str(step.inputs.get(connection) or "") if connection else ""
        if name and name not in connections:
            row, secret_settings = resources.connection_settings(platform, session, name)
            connections[name] = ConnectionSpec(
                name=row.name,
                type=row.type,
                settings={**row.settings, **secret_settings},
                secret_keys=sorted(secret_settings),
            )
    repo = Repository(
        name=pipeline.repo,
        url=f"{platform.settings.url}/git/{pipeline.repo}.git",
        commit=run.source_version,
        ref=run.source_branch,
    )
    others = {
        resource.alias: Repository(
            name=resource.repo,
            url=f"{platform.settings.url}/git/{resource.repo}.git",
            commit=resource.commit or "",
            ref=resource.ref or "HEAD",
        )
        for resource in plan.repositories
    }
    return JobSpec(
        job_id=job.id,
        run_id=run.id,
        attempt=job.attempt,
        stage=job.stage,
        name=job.name,
        display_name=job.display_name,
        access_token=token,
        timeout_in_minutes=int(planned.timeout_in_minutes),  # 0: no limit (Azure's maximum; see docs)
        cancel_timeout_in_minutes=int(planned.cancel_timeout_in_minutes or 5),
        workspace_clean=planned.workspace_clean,
        variables={**resolved.plain, **predefined},
        secrets=resolved.secret,
        readonly=list(resolved.readonly),
        steps=[StepSpec.from_dict(plan_store.step_spec(step, index)) for index, step in enumerate(planned.steps)],
        repository=repo,
        repositories=others,
        connections=connections,
        lease_seconds=platform.settings.job_lease_seconds,
        batch_reports=True,
    )


def authenticate_job(platform: Platform, header: str | None, job_id: int) -> JobRef:
    """The running job whose token is in `header` (Bearer); 401 otherwise."""
    remembered = remembered_job(platform, header, job_id)
    if remembered is not None:
        return remembered
    hashed = token_hash(_job_token(header))
    generation = platform.job_tokens.generation  # before the read: a token written meanwhile voids what it finds
    with transaction(platform.sessions) as session:
        job = session.scalars(select(RunJob).where(RunJob.token_hash == hashed)).first()
        if job is None or job.id != job_id:
            raise AuthenticationError("invalid or expired job token")
        found = JobRef(job.id, job.run_id)
    platform.job_tokens.put(hashed, found, generation)
    return found


def remembered_job(platform: Platform, header: str | None, job_id: int) -> JobRef | None:
    """authenticate_job for a token seen a moment ago, from memory only (an event loop may call it); None when
    it must be looked up (mlyard.services.principals.JobTokens)."""
    job = platform.job_tokens.get(token_hash(_job_token(header)))
    return job if job is not None and job.id == job_id else None


def _job_token(header: str | None) -> str:
    token = (header or "").partition(" ")[2].strip()
    if not token.startswith(JOB_TOKEN_PREFIX):
        raise AuthenticationError("job token required: agents report with the token of the job they run")
    return token


def job_repo_access(platform: Platform, token: str) -> frozenset[str]:
    """The repositories a job token may read (for `checkout`): its run's repository and the repository
    resources of the run's plan; none if it is not a live job token."""
    if not token.startswith(JOB_TOKEN_PREFIX):
        return frozenset()
    hashed = token_hash(token)
    remembered = platform.job_tokens.repos(hashed)  # a checkout's second git request, a moment after its first
    if remembered is not None:
        return remembered
    generation = platform.job_tokens.generation
    with transaction(platform.sessions) as session:
        job = session.scalars(select(RunJob).where(RunJob.token_hash == hashed)).first()
        if job is None or job.state != states.RUNNING:
            return frozenset()
        run = session.get(Run, job.run_id)
        pipeline = session.get(Pipeline, run.pipeline_id) if run else None
        if run is None or pipeline is None:
            return frozenset()
        others = plan_store.load(run.plan).repositories if run.plan else ()
        repos = frozenset({pipeline.repo, *(resource.repo for resource in others)})
    platform.job_tokens.put_repos(hashed, repos, generation)
    return repos


def heartbeat(platform: Platform, job_id: int) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        job = _running(session, job_id)
        _queue(platform).renew(job)
        run = session.get(Run, job.run_id)
        return {"cancel": bool(run and run.cancel_requested), "lease_seconds": platform.settings.job_lease_seconds}


def _running(session: Session, job_id: int) -> RunJob:
    return JobQueue.running(session, job_id)


def update_step(
    platform: Platform,
    job_id: int,
    step_key: str,
    *,
    state: str,
    result: str | None = None,
    issues: list[dict[str, str]] | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    """A step's state as its agent reports it; `display_name` is the step's name with its `$(...)` macros
    expanded at job start (as Azure DevOps shows it), masked again with the secrets the server knows."""
    with transaction(platform.sessions) as session:
        job = _running(session, job_id)
        step = session.scalars(select(RunStep).where(RunStep.job_id == job.id, RunStep.step_key == step_key)).first()
        if step is None:  # a step the agent adds itself (implicit checkout)
            step = RunStep(
                job_id=job.id,
                step_key=step_key,
                position=-1,
                name=step_key.strip("_"),
                display_name="Checkout self" if "checkout" in step_key else step_key,
                state=states.NOT_STARTED,
            )
            session.add(step)
        if display_name:
            step.display_name = logs.mask(display_name, _secrets_of(platform, job))
        if state == states.RUNNING:
            states.transition(step, states.RUNNING)
        else:
            if result not in states.FINAL:
                raise InvalidInput(f"invalid step result {result!r}; one of {', '.join(sorted(states.FINAL))}")
            step.issues = _masked(list(issues or []), _secrets_of(platform, job))
            states.transition(step, result)
        return {"ok": True}


def append_logs(platform: Platform, job: JobIdentity, step_key: str | None, lines: Sequence[Sequence[Any]]) -> int:
    hidden = _secrets_of(platform, job)
    clean = [(float(t), logs.mask(str(text), hidden)) for t, text in lines]
    return logs.append(logs.log_file(platform.settings.home, job.run_id, job.id, step_key), clean)


def artifact_path(platform: Platform, run_id: int, name: str) -> Path:
    if not _ARTIFACT_RE.match(name):
        raise InvalidInput(f"invalid artifact name {name!r}: letters, digits, '.', '_', '-' and spaces")
    return logs.run_dir(platform.settings.home, run_id) / "artifacts" / f"{name}.tar.gz"


def begin_artifact(platform: Platform, job: JobIdentity, name: str) -> Path:
    """Check that `name` is free in the job's run; return the part file an upload streams into.

    The upload goes to disk as it arrives (never into memory); `store_artifact` then publishes it.
    """
    path = artifact_path(platform, job.run_id, name)
    with transaction(platform.sessions) as session:
        _check_free(session, job.run_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{random.token_hex(8)}.part")


def store_artifact(platform: Platform, job: JobIdentity, name: str, part: Path, size: int) -> dict[str, Any]:
    """Publish an uploaded part file as the run's artifact `name` (the part file is gone afterwards)."""
    path = artifact_path(platform, job.run_id, name)
    try:
        with transaction(platform.sessions) as session:
            _check_free(session, job.run_id, name)
            session.add(RunArtifact(run_id=job.run_id, job_id=job.id, name=name, size=size))
            session.flush()
            part.replace(path)
    except IntegrityError:  # the same name uploaded at the same time by another step
        raise _taken(job.run_id, name) from None
    finally:
        part.unlink(missing_ok=True)
    return {"name": name, "size": size}


def _check_free(session: Session, run_id: int, name: str) -> None:
    if session.scalars(select(RunArtifact.id).where(RunArtifact.run_id == run_id, RunArtifact.name == name)).first():
        raise _taken(run_id, name)


def _taken(run_id: int, name: str) -> Conflict:
    return Conflict(f"artifact {name!r} already exists in run {run_id}: artifact names are unique per run")


def resource_run(platform: Platform, job: JobIdentity, run_id: int) -> int:
    """`run_id` if the job's run names it as the run of a pipeline resource (`resources.pipeline.X.runID`);
    a job reads no other run's artifacts."""
    with transaction(platform.sessions) as session:
        run = session.get(Run, job.run_id)
        plan = plan_store.load(run.plan) if run is not None and run.plan else None
        named = dict(run.variables) if run is not None else {}
        named.update((v.name, v.value) for v in (plan.variables if plan else ()) if isinstance(v, Variable))
    allowed = {v for k, v in named.items() if k.startswith("resources.pipeline.") and k.endswith(".runID")}
    if str(run_id) not in allowed:
        raise NotFound(f"run {run_id} is not the run of a pipeline resource of this run: no artifacts to download")
    return run_id


def list_artifacts(platform: Platform, run_id: int) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        return [
            {"name": a.name, "size": a.size, "job_id": a.job_id, "created_at": a.created_at.isoformat()}
            for a in session.scalars(select(RunArtifact).where(RunArtifact.run_id == run_id).order_by(RunArtifact.id))
        ]


def artifact_file(platform: Platform, run_id: int, name: str) -> Path:
    """The file of a run's artifact (a tar.gz), to be sent as it is read."""
    path = artifact_path(platform, run_id, name)
    if not path.exists():
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return path


def store_tests(platform: Platform, job: JobIdentity, summary: dict[str, Any]) -> dict[str, Any]:
    summary = _masked(summary, _secrets_of(platform, job))  # test names and messages can hold anything
    with transaction(platform.sessions) as session:
        session.add(TestResult(run_id=job.run_id, job_id=job.id, summary=summary))
    return {"ok": True}


MAX_COVERAGE_FILES = 1_000  # file names kept with one coverage summary


def store_coverage(platform: Platform, job: JobIdentity, summary: CoverageSummary) -> dict[str, Any]:
    counts = (summary.lines_covered, summary.lines_valid, summary.branches_covered, summary.branches_valid)
    if any(count < 0 for count in counts) or summary.lines_covered > summary.lines_valid or (
        summary.branches_covered > summary.branches_valid
    ):
        raise InvalidInput("invalid coverage summary: covered counts must be between 0 and the valid counts")
    files = _masked(list(summary.files[:MAX_COVERAGE_FILES]), _secrets_of(platform, job))
    with transaction(platform.sessions) as session:
        session.add(CoverageResult(
            run_id=job.run_id, job_id=job.id, format=summary.format[:32], lines_covered=summary.lines_covered,
            lines_valid=summary.lines_valid, branches_covered=summary.branches_covered,
            branches_valid=summary.branches_valid, files=files,
        ))  # fmt: skip
    return {"ok": True}


def complete(platform: Platform, orchestrator: Orchestrator, job_id: int, outcome: JobOutcome) -> dict[str, Any]:
    with orchestrator.lock, transaction(platform.sessions) as session:
        job = _running(session, job_id)
        run_id = job.run_id
        if outcome.result not in states.FINAL:
            raise InvalidInput(f"invalid job result {outcome.result!r}")
        # What is stored in plain text is masked again: an agent that does not mask cannot store a secret.
        hidden = _secrets_of(platform, job) | set(outcome.secret_outputs.values())
        job.outputs = _masked(dict(outcome.outputs), hidden)
        job.secret_outputs = secrets.encrypt_map(platform, dict(outcome.secret_outputs))
        if outcome.message:
            job.message = logs.mask(outcome.message, hidden)
        job.token_hash = None
        for step in session.scalars(select(RunStep).where(RunStep.job_id == job.id)):
            if step.state == states.RUNNING:
                states.transition(step, states.CANCELED if outcome.result == states.CANCELED else states.FAILED)
            elif not states.is_final(step.state):
                states.transition(step, states.SKIPPED)
        run = session.get(Run, job.run_id)
        if run is not None:
            if outcome.tags:
                run.tags = sorted(set(run.tags) | set(_masked(list(outcome.tags), hidden)))
            if outcome.build_number:
                run.build_number = logs.mask(outcome.build_number, hidden)
        states.transition(job, outcome.result)
    orchestrator.queue.forget(job_id)
    orchestrator.notify(run_id)  # only this run moves on: its next jobs, its result
    return {"ok": True}


def job_counts(platform: Platform) -> tuple[int, int]:
    """(queued, running) pipeline jobs of runs under way: what waits for an agent and what agents run now."""
    from sqlalchemy import func

    with transaction(platform.sessions) as session:
        rows = session.execute(
            select(RunJob.state, func.count())
            .join(Run, Run.id == RunJob.run_id)
            .where(RunJob.state.in_([states.QUEUED, states.RUNNING]), Run.state == states.RUNNING)
            .group_by(RunJob.state)
        ).all()
    counts = {str(state): int(count) for state, count in rows}
    return counts.get(str(states.QUEUED), 0), counts.get(str(states.RUNNING), 0)
