"""A compiled plan as stored with its run: plain JSON, read back here only, as a typed :class:`Plan`.

The orchestrator stores ``Plan.to_dict()`` (the one serialisation, with its round trip ``Plan.from_dict``).
``load`` / ``job_plan`` also read the snake_case form stored before (runs stored then keep it: their
pools, strategies and parameters were not kept); tests/ci/legacy_plan.py writes that form for the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlyard.pipelines import Plan
from mlyard.pipelines.model import Environment, Job, Leg, Stage, Step
from mlyard.pipelines.plan import leg_from, protected_resources, variable_entries


def step_id(step: Step, index: int) -> str:
    """The key of a job's step in its run (``RunStep.step_key``, ``StepSpec.id``): position and name."""
    return f"{index + 1:03d}-{step.name}"


def step_spec(step: Step, index: int) -> dict[str, Any]:
    return {
        "id": step_id(step, index),
        "name": step.name,
        "display_name": step.display_name,
        "kind": step.kind,
        "task": step.task,
        "inputs": dict(step.inputs),
        "env": dict(step.env),
        "condition": step.condition,
        "continue_on_error": step.continue_on_error,
        "timeout_in_minutes": step.timeout_in_minutes,
        "enabled": step.enabled,
        "retry_count_on_task_failure": step.retry_count_on_task_failure,
        "unsupported": step.unsupported,
    }


def resources(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The protected resources a stored plan uses: (kind, name), in order of first use."""
    return protected_resources(load(doc))


def load(doc: Mapping[str, Any]) -> Plan:
    """The typed plan of a run's stored document (either form)."""
    return Plan.from_dict(doc) if _is_canonical(doc) else _legacy_plan(doc)


def job_plan(doc: Mapping[str, Any], stage: str, job: str) -> Plan:
    """The stored plan narrowed to one job: the root variables and the job's stage holding only that job
    (a claim reads one job, not every job of a large plan). KeyError when the plan has no such job."""
    canonical = _is_canonical(doc)
    stage_key, job_keys = ("stage", ("job", "deployment")) if canonical else ("name", ("name",))
    stage_doc = next((s for s in doc.get("stages", ()) if s.get(stage_key) == stage), None)
    jobs = stage_doc.get("jobs", ()) if stage_doc is not None else ()
    job_doc = next((j for j in jobs if any(j.get(key) == job for key in job_keys)), None)
    if stage_doc is None or job_doc is None:
        raise KeyError(f"the run's plan has no job {job!r} in stage {stage!r}")
    narrowed = {**doc, "stages": [{**stage_doc, "jobs": [job_doc]}]}
    return Plan.from_dict(narrowed) if canonical else _legacy_plan(narrowed)


def legs(doc: Mapping[str, Any]) -> dict[tuple[str, str], Leg]:
    """The legs of job strategies in a stored plan, by (stage, job) (read without building the whole plan)."""
    found: dict[tuple[str, str], Leg] = {}
    if not _is_canonical(doc):
        return found  # plans stored before job strategies have none
    for stage in doc.get("stages", ()):
        for job in stage.get("jobs", ()):
            leg = leg_from(job.get("leg"))
            if leg is not None:
                found[(stage["stage"], job.get("job") or job.get("deployment"))] = leg
    return found


def _is_canonical(doc: Mapping[str, Any]) -> bool:
    return "parameters" in doc  # Plan.to_dict() always writes it, plan_doc never did


def _legacy_plan(doc: Mapping[str, Any]) -> Plan:
    return Plan(
        name=doc.get("name"),
        stages=tuple(_legacy_stage(stage) for stage in doc.get("stages", ())),
        variables=variable_entries(doc.get("variables", ())),
        run_name=doc.get("run_name"),
        warnings=tuple(doc.get("warnings", ())),
    )


def _legacy_stage(doc: Mapping[str, Any]) -> Stage:
    return Stage(
        name=doc["name"],
        display_name=doc["display_name"],
        depends_on=tuple(doc["depends_on"]),
        condition=doc["condition"],
        variables=variable_entries(doc["variables"]),
        jobs=tuple(_legacy_job(job) for job in doc["jobs"]),
    )


def _legacy_job(doc: Mapping[str, Any]) -> Job:
    return Job(
        name=doc["name"],
        kind=doc["kind"],
        display_name=doc["display_name"],
        depends_on=tuple(doc["depends_on"]),
        condition=doc["condition"],
        timeout_in_minutes=doc["timeout_in_minutes"],
        cancel_timeout_in_minutes=doc["cancel_timeout_in_minutes"],
        continue_on_error=doc["continue_on_error"],
        workspace_clean=doc["workspace_clean"],
        environment=Environment(doc["environment"]) if doc["environment"] else None,
        variables=variable_entries(doc["variables"]),
        steps=tuple(_legacy_step(step) for step in doc["steps"]),
    )


def _legacy_step(doc: Mapping[str, Any]) -> Step:
    return Step(
        name=doc["name"],
        kind=doc["kind"],
        display_name=doc["display_name"],
        task=doc["task"],
        inputs=dict(doc["inputs"]),
        env=dict(doc["env"]),
        condition=doc["condition"],
        continue_on_error=doc["continue_on_error"],
        timeout_in_minutes=doc["timeout_in_minutes"],
        enabled=doc["enabled"],
        retry_count_on_task_failure=doc["retry_count_on_task_failure"],
    )
