"""The compiled plan of a run, its dictionary form (one serialisation, with a round trip:
``Plan.from_dict(plan.to_dict()) == plan``), and the dependency graph checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlyard.pipelines.errors import Diagnostic
from mlyard.pipelines.model import (
    Environment,
    Job,
    JobKind,
    Leg,
    Pool,
    Stage,
    Step,
    Variable,
    VariableEntry,
    VariableGroup,
)  # fmt: skip
from mlyard.pipelines.resources import RepositoryResource
from mlyard.pipelines.source import Mark, Reporter


@dataclass(frozen=True)
class Plan:
    """Everything a runner needs: stages with their jobs and fully expanded steps.

    Runtime expressions (``$[ ]``), macros (``$(var)``) and conditions stay strings for the runner.
    ``unsupported``: where the pipeline uses valid Azure Pipelines that mlyard cannot run (each such step
    also carries ``Step.unsupported``).
    """

    name: str | None
    stages: tuple[Stage, ...]
    variables: tuple[VariableEntry, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    warnings: tuple[str, ...] = ()
    unsupported: tuple[Diagnostic, ...] = ()
    repositories: tuple[RepositoryResource, ...] = ()  # resources.repositories (`checkout: alias`)

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (KeyError when there is none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def jobs(self) -> tuple[Job, ...]:
        """All jobs of all stages, in order."""
        return tuple(job for stage in self.stages for job in stage.jobs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dictionary with Azure's key spelling."""
        document: dict[str, Any] = {"name": self.name}
        if self.run_name:
            document["runName"] = self.run_name
        document["parameters"] = plain(dict(self.parameters))
        document["variables"] = [_variable(entry) for entry in self.variables]
        document["stages"] = [_stage(stage) for stage in self.stages]
        if self.repositories:
            document["resources"] = {"repositories": [repository.to_dict() for repository in self.repositories]}
        if self.warnings:
            document["warnings"] = list(self.warnings)
        if self.unsupported:
            document["unsupported"] = [notice_dict(notice) for notice in self.unsupported]
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Plan:
        """The plan of a dictionary made by :meth:`to_dict` (as stored, or read back from JSON/YAML)."""
        return cls(
            name=document.get("name"),
            stages=tuple(_stage_from(stage) for stage in document.get("stages", ())),
            variables=variable_entries(document.get("variables", ())),
            parameters=dict(document.get("parameters") or {}),
            run_name=document.get("runName"),
            warnings=tuple(document.get("warnings", ())),
            unsupported=tuple(notice_from(notice) for notice in document.get("unsupported", ())),
            repositories=tuple(
                RepositoryResource.from_dict(item) for item in (document.get("resources") or {}).get("repositories", ())
            ),
        )


def notice_dict(notice: Diagnostic) -> dict[str, Any]:
    """A diagnostic or notice as JSON: ``{"file", "line", "column", "path", "message"}``."""
    return {"file": notice.file, "line": notice.line, "column": notice.column, "path": notice.path,
            "message": notice.message}  # fmt: skip


def notice_from(document: Mapping[str, Any]) -> Diagnostic:
    return Diagnostic(
        str(document["file"]), int(document["line"]), int(document["column"]), str(document.get("path", "")),
        str(document["message"]),
    )  # fmt: skip


def plain(value: Any) -> Any:
    """Nested mappings and sequences as plain ``dict`` and ``list`` (for YAML/JSON dumpers)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _variable(entry: VariableEntry) -> dict[str, Any]:
    if isinstance(entry, VariableGroup):
        return {"group": entry.group}
    result: dict[str, Any] = {"name": entry.name, "value": entry.value}
    if entry.readonly:
        result["readonly"] = True
    return result


def variable_entries(documents: Sequence[Mapping[str, Any]]) -> tuple[VariableEntry, ...]:
    """Variable entries of their dictionary form: ``{"group": G}`` or ``{"name", "value"[, "readonly"]}``."""
    entries: list[VariableEntry] = []
    for document in documents:
        if "group" in document:
            entries.append(VariableGroup(str(document["group"])))
        else:
            entries.append(Variable(str(document["name"]), str(document["value"]), bool(document.get("readonly"))))
    return tuple(entries)


def _stage_from(document: Mapping[str, Any]) -> Stage:
    return Stage(
        name=document["stage"],
        display_name=document["displayName"],
        depends_on=tuple(document.get("dependsOn", ())),
        condition=document.get("condition", "succeeded()"),
        variables=variable_entries(document.get("variables", ())),
        jobs=tuple(_job_from(job) for job in document.get("jobs", ())),
    )


def _job_from(document: Mapping[str, Any]) -> Job:
    kind: JobKind = "deployment" if "deployment" in document else "job"
    environment = document.get("environment")
    pool = document.get("pool")
    return Job(
        name=document[kind],
        kind=kind,
        display_name=document["displayName"],
        depends_on=tuple(document.get("dependsOn", ())),
        condition=document.get("condition", "succeeded()"),
        timeout_in_minutes=int(document.get("timeoutInMinutes", 60)),
        cancel_timeout_in_minutes=int(document.get("cancelTimeoutInMinutes", 5)),
        continue_on_error=bool(document.get("continueOnError", False)),
        pool=None if pool is None else Pool(pool.get("name"), pool.get("vmImage"), tuple(pool.get("demands", ()))),
        workspace_clean=(document.get("workspace") or {}).get("clean"),
        environment=None
        if environment is None
        else Environment(environment["name"], environment.get("resourceName"), environment.get("resourceType")),
        strategy=document.get("strategy"),
        variables=variable_entries(document.get("variables", ())),
        steps=tuple(_step_from(step) for step in document.get("steps", ())),
        leg=leg_from(document.get("leg")),
        container=document.get("container"),
    )


def leg_from(document: Mapping[str, Any] | None) -> Leg | None:
    """The :class:`Leg` of a job's ``leg`` entry (None for a job no strategy copied)."""
    if document is None:
        return None
    return Leg(
        str(document["phase"]),
        str(document["name"]),
        int(document["position"]),
        int(document["total"]),
        int(document.get("maxParallel", 0)),
    )


def _step_from(document: Mapping[str, Any]) -> Step:
    return Step(
        name=document["name"],
        kind=document["kind"],
        display_name=document["displayName"],
        task=document.get("task"),
        inputs=dict(document.get("inputs") or {}),
        env=dict(document.get("env") or {}),
        condition=document.get("condition", "succeeded()"),
        continue_on_error=bool(document.get("continueOnError", False)),
        timeout_in_minutes=int(document.get("timeoutInMinutes", 0)),
        enabled=bool(document.get("enabled", True)),
        retry_count_on_task_failure=int(document.get("retryCountOnTaskFailure", 0)),
        unsupported=document.get("unsupported"),
    )


def _stage(stage: Stage) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "displayName": stage.display_name,
        "dependsOn": list(stage.depends_on),
        "condition": stage.condition,
        "variables": [_variable(entry) for entry in stage.variables],
        "jobs": [_job(job) for job in stage.jobs],
    }


def _pool(pool: Pool | None) -> dict[str, Any] | None:
    if pool is None:
        return None
    result: dict[str, Any] = {key: value for key, value in (("name", pool.name), ("vmImage", pool.vm_image)) if value}
    if pool.demands:
        result["demands"] = list(pool.demands)
    return result


def _job(job: Job) -> dict[str, Any]:
    result: dict[str, Any] = {
        job.kind: job.name,
        "displayName": job.display_name,
        "dependsOn": list(job.depends_on),
        "condition": job.condition,
        "timeoutInMinutes": job.timeout_in_minutes,
        "cancelTimeoutInMinutes": job.cancel_timeout_in_minutes,
        "continueOnError": job.continue_on_error,
        "pool": _pool(job.pool),
    }
    if job.workspace_clean:
        result["workspace"] = {"clean": job.workspace_clean}
    if job.environment:
        env = job.environment
        result["environment"] = {"name": env.name}
        if env.resource_type:
            result["environment"]["resourceType"] = env.resource_type
        if env.resource_name:
            result["environment"]["resourceName"] = env.resource_name
    if job.strategy:
        result["strategy"] = job.strategy
    if job.leg:
        leg = job.leg
        result["leg"] = {"phase": leg.phase, "name": leg.name, "position": leg.position, "total": leg.total}
        if leg.max_parallel:
            result["leg"]["maxParallel"] = leg.max_parallel
    if job.container:
        result["container"] = job.container
    result["variables"] = [_variable(entry) for entry in job.variables]
    result["steps"] = [_step(step) for step in job.steps]
    return result


def _step(step: Step) -> dict[str, Any]:
    result: dict[str, Any] = {"name": step.name, "kind": step.kind, "displayName": step.display_name}
    if step.task:
        result["task"] = step.task
    result["inputs"] = dict(step.inputs)
    if step.env:
        result["env"] = dict(step.env)
    result["condition"] = step.condition
    result["continueOnError"] = step.continue_on_error
    result["enabled"] = step.enabled
    if step.timeout_in_minutes:
        result["timeoutInMinutes"] = step.timeout_in_minutes
    if step.retry_count_on_task_failure:
        result["retryCountOnTaskFailure"] = step.retry_count_on_task_failure
    if step.unsupported:
        result["unsupported"] = step.unsupported
    return result


@dataclass(frozen=True)
class Node:
    """A stage or job in a dependency graph: its name, dependencies and where they are written."""

    name: str
    depends_on: tuple[str, ...]
    mark: Mark | None
    depends_mark: Mark | None
    path: str


def check_graph(nodes: Sequence[Node], what: str, reporter: Reporter, scope: str = "") -> None:
    """Duplicate names, unknown ``dependsOn`` and cycles, each reported with its own message."""
    seen: dict[str, Node] = {}
    for node in nodes:
        if node.name in seen:
            first = seen[node.name].mark
            where = f" (first defined on line {first.line})" if first else ""
            reporter.add(node.mark, node.path, f"duplicate {what} name '{node.name}'{scope}{where}")
        else:
            seen[node.name] = node
    names = ", ".join(seen) or "none"
    for node in nodes:
        for dependency in node.depends_on:
            if dependency not in seen:
                message = f"{what} '{node.name}' depends on unknown {what} '{dependency}'{scope}; {what}s: {names}"
                reporter.add(node.depends_mark or node.mark, f"{node.path}.dependsOn", message)
    _check_cycles(seen, what, reporter, scope)


def _check_cycles(nodes: Mapping[str, Node], what: str, reporter: Reporter, scope: str) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            name, index = stack[-1]
            dependencies = [d for d in nodes[name].depends_on if d in nodes]
            if index >= len(dependencies):
                stack.pop()
                path.pop()
                state[name] = 2
                continue
            stack[-1] = (name, index + 1)
            following = dependencies[index]
            if state.get(following) == 1:
                cycle = [*path[path.index(following) :], following]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    node = nodes[following]
                    message = f"dependency cycle between {what}s{scope}: {' -> '.join(cycle)}"
                    reporter.add(node.depends_mark or node.mark, f"{node.path}.dependsOn", message)
            elif not state.get(following):
                state[following] = 1
                stack.append((following, 0))
                path.append(following)


__all__ = [
    "Job", "Node", "Plan", "Pool", "Stage", "Step", "Variable", "VariableGroup", "check_graph", "variable_entries",
]  # fmt: skip


def protected_resources(plan: Plan) -> list[tuple[str, str]]:
    """The protected resources a plan uses, (kind, name) in order of first use: variable groups,
    deployment environments and the service connections of tasks (the runs' permission checks)."""
    from mlyard.pipelines.tasks import connection_input

    found: list[tuple[str, str]] = []

    def add(kind: str, name: str) -> None:
        if name and (kind, name) not in found:
            found.append((kind, name))

    def groups(entries: tuple[VariableEntry, ...]) -> None:
        for entry in entries:
            if isinstance(entry, VariableGroup):
                add("variablegroup", entry.group)

    groups(plan.variables)
    for stage in plan.stages:
        groups(stage.variables)
        for job in stage.jobs:
            groups(job.variables)
            if job.environment:
                add("environment", job.environment.name)
            for step in job.steps:
                key = connection_input(step.task)
                if key:
                    add("connection", str(step.inputs.get(key, "")))
    return found
