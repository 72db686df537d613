"""The snake_case form runs stored their plan in before ``Plan.to_dict()`` (mlyard.ci.plan_store still
reads it): written here only, to test that reading."""

from __future__ import annotations

from typing import Any

from mlyard.ci.plan_store import step_spec
from mlyard.pipelines import Plan
from mlyard.pipelines.model import Job, VariableEntry, VariableGroup


def entries(variables: tuple[VariableEntry, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in variables:
        if isinstance(entry, VariableGroup):
            out.append({"group": entry.group})
        else:
            out.append({"name": entry.name, "value": entry.value, "readonly": entry.readonly})
    return out


def job_doc(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "display_name": job.display_name,
        "kind": job.kind,
        "depends_on": list(job.depends_on),
        "condition": job.condition,
        "timeout_in_minutes": job.timeout_in_minutes,
        "cancel_timeout_in_minutes": job.cancel_timeout_in_minutes,
        "continue_on_error": job.continue_on_error,
        "workspace_clean": job.workspace_clean,
        "environment": job.environment.name if job.environment else "",
        "variables": entries(job.variables),
        "steps": [step_spec(s, i) for i, s in enumerate(job.steps)],
    }


def plan_doc(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "run_name": plan.run_name,
        "variables": entries(plan.variables),
        "warnings": list(plan.warnings),
        "stages": [
            {
                "name": s.name,
                "display_name": s.display_name,
                "depends_on": list(s.depends_on),
                "condition": s.condition,
                "variables": entries(s.variables),
                "jobs": [job_doc(j) for j in s.jobs],
            }
            for s in plan.stages
        ],
    }
