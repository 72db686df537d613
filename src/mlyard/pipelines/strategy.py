"""Job strategies ("jobs.job.strategy"): ``matrix`` and ``parallel`` copy a job into legs.

A matrix configuration ``linux`` of job ``Build`` becomes job ``Build_linux`` (shown as ``Build linux``)
whose job variables are the configuration's variables (after the job's own ``variables``, so they win);
``parallel: N`` makes ``Build_1`` .. ``Build_N``. Every leg records its :class:`~mlyard.pipelines.model.Leg`
(``System.JobPositionInPhase``, ``System.TotalJobsInPhase``, ``maxParallel``); ``dependsOn: Build``
means every leg (:func:`expand_depends_on`). An empty matrix, or ``parallel: 1``, leaves the job as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mlyard.pipelines.model import Job, Leg, Variable
from mlyard.pipelines.parameters import text
from mlyard.pipelines.schema import join_path
from mlyard.pipelines.source import Reporter

MAX_LEGS = 256  # copies one job strategy may make (Azure's bound for a matrix)
_CONFIGURATION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")


def legs(job: Job, node: Any, path: str, reporter: Reporter) -> tuple[Job, ...]:
    """The jobs ``job`` becomes under its ``strategy`` (``node`` is the job's mapping, ``path`` its path)."""
    strategy = node.get("strategy") if isinstance(node, dict) else None
    if not isinstance(strategy, dict):
        return (job,)
    where = join_path(path, "strategy")
    matrix, parallel = strategy.get("matrix"), strategy.get("parallel")
    max_parallel = _whole(strategy, "maxParallel", where, reporter, lowest=0)
    if matrix is not None and parallel is not None:
        reporter.at(strategy, "parallel", where, "use either 'matrix' or 'parallel' in a job strategy, not both")
        return (job,)
    if matrix is not None:
        configurations = _matrix(matrix, strategy, join_path(where, "matrix"), reporter)
    elif parallel is not None:
        count = _whole(strategy, "parallel", where, reporter, lowest=1)
        configurations = [(str(index), {}) for index in range(1, count + 1)] if count > 1 else []
    else:
        return (job,)
    if not configurations:
        return (job,)
    total = len(configurations)
    return tuple(
        replace(
            job,
            name=f"{job.name}_{name}",
            display_name=f"{job.display_name} {name}",
            variables=(*job.variables, *(Variable(key, value) for key, value in values.items())),
            leg=Leg(job.name, name, position, total, max_parallel),
        )
        for position, (name, values) in enumerate(configurations, start=1)
    )


def _whole(strategy: Mapping[str, Any], key: str, path: str, reporter: Reporter, *, lowest: int) -> int:
    value = strategy.get(key)
    if value is None:
        return lowest
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if not lowest <= number <= MAX_LEGS:
        message = f"'{key}' must be a whole number from {lowest} to {MAX_LEGS}, got '{text(value)}'"
        reporter.at(strategy, key, join_path(path, key), message)
        return lowest
    return number


def _matrix(matrix: Any, strategy: Any, path: str, reporter: Reporter) -> list[tuple[str, dict[str, str]]]:
    if isinstance(matrix, str) and matrix.strip().startswith("$["):
        message = (
            "a matrix computed at run time ($[ ]) is not supported by mlyard; "
            "write the matrix in the YAML or build it with a ${{ }} template expression"
        )
        reporter.at(strategy, "matrix", path, message)
        return []
    if not isinstance(matrix, dict):
        reporter.at(strategy, "matrix", path, f"a matrix must be a mapping of configurations, got '{text(matrix)}'")
        return []
    if len(matrix) > MAX_LEGS:
        reporter.at(strategy, "matrix", path, f"a matrix may have at most {MAX_LEGS} configurations, got {len(matrix)}")
        return []
    configurations: list[tuple[str, dict[str, str]]] = []
    for name, values in matrix.items():
        here = join_path(path, str(name))
        if not _CONFIGURATION.match(str(name)):
            message = (
                f"invalid matrix configuration name '{name}': use letters, digits and '_', "
                "starting with a letter, at most 100 characters"
            )
            reporter.at(matrix, name, here, message)
            continue
        if values is None:
            values = {}
        if not isinstance(values, dict) or any(isinstance(v, dict | list) for v in values.values()):
            message = f"matrix configuration '{name}' must be a mapping of variable names to values"
            reporter.at(matrix, name, here, message)
            continue
        configurations.append((str(name), {str(key): text(value) for key, value in values.items()}))
    return configurations


def expand_depends_on(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` with a ``dependsOn`` naming a job that became legs naming every leg instead."""
    phases: dict[str, list[str]] = {}
    for job in jobs:
        if job.leg is not None:
            phases.setdefault(job.leg.phase, []).append(job.name)
    if not phases:
        return list(jobs)
    result = []
    for job in jobs:
        names = [leg for name in job.depends_on for leg in phases.get(name, [name])]
        result.append(replace(job, depends_on=tuple(dict.fromkeys(names))) if names != list(job.depends_on) else job)
    return result
