"""The variables of one job, resolved from its plan scopes: pure, so the rule is tested in-process.

Scopes apply in order (pipeline root, stage, job) and within a scope entry by entry; the last definition
of a name (case-insensitive, as in Azure) wins, whether plain or secret. A variable group adds its plain
and secret values; a value that is a whole runtime expression (``$[ ... ]``) is evaluated against the
job's context (dependencies' outputs, variables); one that fails yields ``<error: ...>`` as its value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlyard.pipelines.expressions import ExpressionContext, evaluate, is_runtime_expression, to_string
from mlyard.pipelines.model import VariableEntry, VariableGroup


@dataclass(frozen=True)
class GroupValues:
    """The values of one variable group: plain and secret (already decrypted)."""

    plain: Mapping[str, str]
    secret: Mapping[str, str]


@dataclass(frozen=True)
class JobVariables:
    """A job's variables: plain ones, secret ones (never both for one name) and the read-only names."""

    plain: dict[str, str]
    secret: dict[str, str]
    readonly: tuple[str, ...]


class _Values:
    """Names (case-insensitive) to (name as written, value, secret)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str, bool]] = {}

    def put(self, values: Mapping[str, str], *, secret: bool) -> None:
        for name, value in values.items():
            self.entries[name.lower()] = (name, str(value), secret)

    def result(self, readonly: Sequence[str]) -> JobVariables:
        plain = {name: value for name, value, secret in self.entries.values() if not secret}
        hidden = {name: value for name, value, secret in self.entries.values() if secret}
        return JobVariables(plain, hidden, tuple(readonly))


def resolve_job_variables(
    scopes: Sequence[Sequence[VariableEntry]],
    *,
    plain: Mapping[str, str],
    secret: Mapping[str, str],
    groups: Mapping[str, GroupValues],
    context: ExpressionContext,
) -> JobVariables:
    """The job's variables: ``plain``/``secret`` (the pipeline's own and queue-time ones; a secret wins over
    a plain value of the same name) overridden by the entries of ``scopes``; ``groups`` holds the values of
    every group the scopes name."""
    values = _Values()
    values.put(plain, secret=False)
    values.put(secret, secret=True)
    readonly: list[str] = []
    for scope in scopes:
        for entry in scope:
            if isinstance(entry, VariableGroup):
                group = groups[entry.group]
                values.put(group.plain, secret=False)
                values.put(group.secret, secret=True)
                continue
            value = entry.value
            if is_runtime_expression(value):
                value = runtime_value(value.strip()[2:-1], context)
            values.put({entry.name: value}, secret=False)
            if entry.readonly and entry.name not in readonly:
                readonly.append(entry.name)
    return values.result(readonly)


def runtime_value(expression: str, context: ExpressionContext) -> str:
    """The string value of a runtime expression, or ``<error: ...>`` when it cannot be evaluated."""
    try:
        return to_string(evaluate(expression, context))
    except Exception as exc:  # any failure of a user's expression is its value, never a failed claim
        return f"<error: {exc}>"
