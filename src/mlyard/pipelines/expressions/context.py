"""What an expression can see: named values, job/stage status and run state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlyard.pipelines.expressions.ast import Node

#: The named values the language defines, in their canonical spelling.
BUILTIN_NAMES: tuple[str, ...] = ("dependencies", "parameters", "pipeline", "stageDependencies", "variables")

_FIELDS = {name: name for name in BUILTIN_NAMES} | {"stageDependencies": "stage_dependencies"}


@dataclass(frozen=True)
class ExpressionContext:
    """The data an expression is evaluated against.

    `variables` names are case-insensitive. `dependencies` maps a job (or, in stage conditions, a stage)
    to `{"result": ..., "outputs": {...}}`; `stage_dependencies` maps stage -> job -> the same shape.
    `dependency_results` feeds the status functions at job/stage level; `job_status` (not None) puts them
    at step level. `allowed` restricts the built-in named values (None = all); `names` adds extra named
    values such as the variable of a template `each` loop (always allowed).
    """

    variables: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    dependencies: Mapping[str, Any] = field(default_factory=dict)
    stage_dependencies: Mapping[str, Any] = field(default_factory=dict)
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    dependency_results: Mapping[str, str] = field(default_factory=dict)
    job_status: str | None = None
    canceled: bool = False
    counter: Callable[[str, int], int] | None = None
    allowed: frozenset[str] | None = None
    names: Mapping[str, Any] = field(default_factory=dict)

    def builtin(self, canonical: str) -> Mapping[str, Any]:
        """The mapping behind a built-in named value (`canonical` as in BUILTIN_NAMES)."""
        return getattr(self, _FIELDS[canonical])  # type: ignore[no-any-return]


class Evaluation(Protocol):
    """What a function implementation gets: the context and a way to evaluate its arguments lazily."""

    context: ExpressionContext

    def value(self, node: Node) -> Any:
        """Evaluate one argument node."""
        ...
