"""A compiled plan as stored with its run: plain JSON the scheduler and the job builder read back."""

from __future__ import annotations

from typing import Any

from mlyard.pipelines import Plan
from mlyard.pipelines.model import Job, Step, VariableEntry, VariableGroup


def entries(variables: tuple[VariableEntry, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in variables:
        if isinstance(entry, VariableGroup):
            out.append({"group": entry.group})
        else:
            out.append({"name": entry.name, "value": entry.value, "readonly": entry.readonly})
    return out


def step_spec(step: Step, index: int) -> dict[str, Any]:
    return {
        "id": f"{index + 1:03d}-{step.name}",
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
    }


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


def resources(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The protected resources a plan uses: (kind, name), in order of first use."""
    found: list[tuple[str, str]] = []

    def add(kind: str, name: str) -> None:
        if name and (kind, name) not in found:
            found.append((kind, name))

    for entry in doc.get("variables", []):
        if "group" in entry:
            add("variablegroup", entry["group"])
    for stage in doc.get("stages", []):
        for entry in stage.get("variables", []):
            if "group" in entry:
                add("variablegroup", entry["group"])
        for job in stage.get("jobs", []):
            for entry in job.get("variables", []):
                if "group" in entry:
                    add("variablegroup", entry["group"])
            if job.get("environment"):
                add("environment", job["environment"])
            for step in job.get("steps", []):
                if step.get("task") == "AzureCLI@2":
                    add("connection", str(step.get("inputs", {}).get("azureSubscription", "")))
    return found
