"""Scheduling decisions on a running run's rows: which stages and jobs start, skip or finish.

Conditions of stages and jobs are evaluated here (the agent evaluates step conditions) with
Azure's dependency contexts: `dependencies.X.result`, `dependencies.X.outputs['step.var']` and
`stageDependencies.S.J.outputs['step.var']`. For the legs of a job strategy, `dependencies.Build` is every
leg of job `Build` (worst result; outputs as `['leg.step.var']`), and at most `maxParallel` legs of one job
are queued or running at once (the others wait, not started).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.ci import plan_store, states
from mlyard.db.tables import Run, RunJob, RunStage, RunStep
from mlyard.errors import MlyardError
from mlyard.pipelines import ExpressionContext, evaluate_condition
from mlyard.pipelines.model import Leg, Variable
from mlyard.pipelines.predefined import RunFacts, source_variables


def schedule(session: Session, run: Run) -> bool:
    """Start, skip or finish what can be of `run`; True when a job became claimable (queued)."""
    stages = list(session.scalars(select(RunStage).where(RunStage.run_id == run.id).order_by(RunStage.position)))
    jobs = list(session.scalars(select(RunJob).where(RunJob.run_id == run.id).order_by(RunJob.position)))
    queued_before = {job.id for job in jobs if job.state == states.QUEUED}
    by_stage = {s.name: [j for j in jobs if j.stage == s.name] for s in stages}
    variables = run_variables(run)
    legs = plan_store.legs(run.plan or {})
    for stage in stages:
        if states.is_final(stage.state):
            continue
        if stage.state == states.NOT_STARTED:
            deps = [s for s in stages if s.name in stage.depends_on]
            if not all(states.is_final(d.state) for d in deps):
                continue
            ctx = ExpressionContext(
                variables=variables,
                dependencies=stage_dependencies(deps, by_stage, legs),
                dependency_results={d.name: states.AZURE_RESULT[d.state] for d in deps},
                canceled=run.cancel_requested,
            )
            if not _condition(stage, ctx):
                _skip_stage(
                    session, stage, by_stage[stage.name], states.CANCELED if run.cancel_requested else states.SKIPPED
                )
                continue
            states.transition(stage, states.RUNNING)
        stage_legs = {job: leg for (name, job), leg in legs.items() if name == stage.name}
        _schedule_jobs(session, run, stage, by_stage, variables, stage_legs, legs)
        stage_jobs = by_stage[stage.name]
        if all(states.is_final(j.state) for j in stage_jobs):
            states.transition(stage, states.worst([_counted(j) for j in stage_jobs]))
    if all(states.is_final(s.state) for s in stages):
        result = states.worst([s.state for s in stages])
        if run.cancel_requested and result != states.FAILED:
            result = states.CANCELED
        states.transition(run, states.SUCCEEDED if result == states.SKIPPED else result)
    return any(job.state == states.QUEUED and job.id not in queued_before for job in jobs)


def _schedule_jobs(
    session: Session,
    run: Run,
    stage: RunStage,
    by_stage: dict[str, list[RunJob]],
    variables: dict[str, str],
    legs: Mapping[str, Leg],
    all_legs: Mapping[tuple[str, str], Leg],
) -> None:
    stage_jobs = by_stage[stage.name]
    for job in stage_jobs:
        if job.state == states.NOT_STARTED:
            deps = [j for j in stage_jobs if j.name in job.depends_on]
            if not all(states.is_final(d.state) for d in deps):
                continue
            dependencies = job_dependencies(deps, legs)
            ctx = ExpressionContext(
                variables=variables,
                dependencies=dependencies,
                stage_dependencies=stage_job_dependencies(by_stage, stage.name, all_legs),
                dependency_results={name: str(entry["result"]) for name, entry in dependencies.items()},
                canceled=run.cancel_requested,
            )
            if not _condition(job, ctx):
                states.transition(job, states.CANCELED if run.cancel_requested else states.SKIPPED)
                skip_steps(session, job)
                continue
            if job.approval in ("required",):
                job.approval = "pending"
                job.message = (
                    f"waiting for approval to deploy to environment {job.environment}: "
                    f"`mlyard runs approve {run.id}` or `mlyard runs reject {run.id}`"
                )
                states.transition(job, states.WAITING)
                continue
            if _at_max_parallel(job, stage_jobs, legs):
                continue  # condition evaluated again when a leg of its job ends
            job.queued_at = datetime.now(UTC)
            states.transition(job, states.QUEUED)
        elif job.state == states.WAITING:
            if job.approval == "approved":
                job.queued_at = datetime.now(UTC)
                states.transition(job, states.QUEUED)
            elif job.approval == "rejected":
                states.transition(job, states.FAILED)
                skip_steps(session, job)
        if run.cancel_requested and job.state in (states.QUEUED, states.WAITING):
            job.message = job.message or "canceled before it started"
            states.transition(job, states.CANCELED)
            skip_steps(session, job)


def _at_max_parallel(job: RunJob, stage_jobs: list[RunJob], legs: Mapping[str, Leg]) -> bool:
    """Whether `maxParallel` legs of `job`'s job are queued or running already."""
    leg = legs.get(job.name)
    if leg is None or not leg.max_parallel:
        return False
    live = (states.QUEUED, states.RUNNING)
    busy = sum(1 for j in stage_jobs if j.state in live and (other := legs.get(j.name)) and other.phase == leg.phase)
    return busy >= leg.max_parallel


def _condition(row: RunStage | RunJob, ctx: ExpressionContext) -> bool:
    try:
        return evaluate_condition(row.condition or "succeeded()", ctx)
    except MlyardError as exc:
        row.message = f"condition '{row.condition}' failed: {exc.message}"
        return False


def _counted(job: RunJob) -> str:
    return states.SUCCEEDED_WITH_ISSUES if job.state == states.FAILED and job.continue_on_error else job.state


def _skip_stage(session: Session, stage: RunStage, jobs: list[RunJob], state: str) -> None:
    for job in jobs:
        if not states.is_final(job.state):
            states.transition(job, state)
        skip_steps(session, job)
    states.transition(stage, state)


def skip_steps(session: Session, job: RunJob) -> None:
    for step in session.scalars(select(RunStep).where(RunStep.job_id == job.id)):
        if not states.is_final(step.state):
            states.transition(step, states.SKIPPED)


def job_dependency(job: RunJob) -> dict[str, Any]:
    return {"result": states.AZURE_RESULT.get(job.state, job.state), "outputs": dict(job.outputs)}


def job_dependencies(deps: list[RunJob], legs: Mapping[str, Leg]) -> dict[str, Any]:
    """`dependencies.<job>` of jobs in the same stage: each job, and each job a strategy made legs of
    (worst result of its legs; outputs `'<leg>.<step>.<var>'`), as Azure names them."""
    found: dict[str, Any] = {d.name: job_dependency(d) for d in deps}
    phases: dict[str, list[RunJob]] = {}
    for dep in deps:
        if dep.name in legs:
            phases.setdefault(legs[dep.name].phase, []).append(dep)
    for phase, members in phases.items():
        result = states.worst([_counted(m) for m in members])
        outputs = {f"{legs[m.name].name}.{key}": value for m in members for key, value in m.outputs.items()}
        found.setdefault(phase, {"result": states.AZURE_RESULT.get(result, result), "outputs": outputs})
    return found


def stage_dependencies(
    deps: list[RunStage], by_stage: dict[str, list[RunJob]], legs: Mapping[tuple[str, str], Leg]
) -> dict[str, Any]:
    """For stage conditions: dependencies.<stage>.result and .outputs['job.step.var'] (a leg's outputs
    also as ['job.leg.step.var'])."""
    out = {}
    for stage in deps:
        outputs: dict[str, Any] = {}
        for j in by_stage.get(stage.name, []):
            leg = legs.get((stage.name, j.name))
            for key, value in j.outputs.items():
                outputs[f"{j.name}.{key}"] = value
                if leg is not None:
                    outputs.setdefault(f"{leg.phase}.{leg.name}.{key}", value)
        out[stage.name] = {"result": states.AZURE_RESULT.get(stage.state, stage.state), "outputs": outputs}
    return out


def stage_job_dependencies(
    by_stage: dict[str, list[RunJob]], current: str, legs: Mapping[tuple[str, str], Leg]
) -> dict[str, Any]:
    """For jobs: stageDependencies.<stage>.<job>.outputs['step.var'] of other stages (a job a strategy made
    legs of as in `job_dependencies`)."""
    return {
        name: job_dependencies(jobs, {job: leg for (stage, job), leg in legs.items() if stage == name})
        for name, jobs in by_stage.items()
        if name != current
    }


def run_variables(run: Run) -> dict[str, str]:
    """Plain variables visible to run-level conditions: the YAML root variables and queue-time ones."""
    values: dict[str, str] = dict(run.variables)
    for entry in plan_store.load(run.plan or {}).variables:
        if isinstance(entry, Variable):
            values[entry.name] = str(entry.value)
    facts = RunFacts(run.id, run.reason, run.source_branch, run.source_version, run.requested_for)
    values.update(source_variables(facts))
    return values
