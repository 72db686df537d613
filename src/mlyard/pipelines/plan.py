"""The compiled plan of a run, its dictionary form, and the dependency graph checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlyard.pipelines.model import Job, Pool, Stage, Step, Variable, VariableEntry, VariableGroup
from mlyard.pipelines.source import Mark, Reporter


@dataclass(frozen=True)
class Plan:
    """Everything a runner needs: stages with their jobs and fully expanded steps.

    Runtime expressions (``$[ ]``), macros (``$(var)``) and conditions stay strings for the runner.
    """

    name: str | None
    stages: tuple[Stage, ...]
    variables: tuple[VariableEntry, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    warnings: tuple[str, ...] = ()

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
        if self.warnings:
            document["warnings"] = list(self.warnings)
        return document


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
        result["environment"] = {"name": env.name, **({"resourceName": env.resource_name} if env.resource_name else {})}
    if job.strategy:
        result["strategy"] = job.strategy
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


__all__ = ["Job", "Node", "Plan", "Pool", "Stage", "Step", "Variable", "VariableGroup", "check_graph"]
