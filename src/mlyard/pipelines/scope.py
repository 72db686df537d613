"""What compile-time expressions see (:class:`Scope`), and how ``${{ }}`` strings are evaluated."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, TypeVar

from mlyard.pipelines.expressions import ExpressionContext, evaluate, interpolate, to_string

_T = TypeVar("_T")
COMPILE_TIME = frozenset({"parameters", "variables"})


@dataclass(frozen=True)
class Scope:
    """What the expressions of one file see: its parameters, compile-time variables, loop names."""

    file: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, Any] = field(default_factory=dict)
    chain: tuple[str, ...] = ()

    def context(self) -> ExpressionContext:
        return ExpressionContext(
            variables=self.variables, parameters=self.parameters, allowed=COMPILE_TIME, names=self.names
        )


_PIECE = re.compile(r"\$\{\{((?:[^'}]|'[^']*'|\}(?!\}))*)\}\}")


@lru_cache(maxsize=8192)
def _pieces(value: str) -> tuple[tuple[str, ...], tuple[str, ...], bool] | None:
    """(literals, expressions, whole) of a string with ``${{ }}``; None when the fast path cannot cut it.

    ``whole``: the string is one expression (blanks around it aside), whose value keeps its type."""
    literals, expressions, position = [], [], 0
    for match in _PIECE.finditer(value):
        literals.append(value[position : match.start()])
        expressions.append(match.group(1).strip())
        position = match.end()
    literals.append(value[position:])
    text = "".join(literals)
    if "${{" in text:
        return None
    return tuple(literals), tuple(expressions), len(expressions) == 1 and not text.strip()


def fast_interpolate(value: str, context: ExpressionContext, one: Callable[[str], Any] | None = None) -> Any:
    """``interpolate`` with the cutting of the string cached (same results; errors come from it).

    ``one`` evaluates one expression in ``context`` (the caller may memoise it).
    """
    pieces = _pieces(value)
    if pieces is None:
        return interpolate(value, context)
    evaluate_one = one or (lambda expression: evaluate(expression, context))
    literals, expressions, whole = pieces
    if whole:
        return evaluate_one(expressions[0])
    out = [literals[0]]
    for expression, literal in zip(expressions, literals[1:], strict=True):
        result = evaluate_one(expression)
        if isinstance(result, list | dict):
            return interpolate(value, context)  # raises its "cannot insert" error
        out.append(result if result.__class__ is str else to_string(result))  # a string is its own text
        out.append(literal)
    return "".join(out)


def with_names(context: ExpressionContext, names: Mapping[str, Any]) -> ExpressionContext:
    """``context`` with other loop names: a shallow copy (``dataclasses.replace`` is 3x slower)."""
    return _with_names(context, names)


def scope_with_names(scope: Scope, names: Mapping[str, Any]) -> Scope:
    """``scope`` with other loop names: a shallow copy, as :func:`with_names` (one per ``each`` element)."""
    return _with_names(scope, names)


def _with_names(frozen: _T, names: Mapping[str, Any]) -> _T:
    """A shallow copy of the frozen dataclass `frozen` whose `names` field is `names`."""
    if not hasattr(frozen, "__dict__"):  # pragma: no cover - if it ever gets __slots__
        return replace(frozen, names=names)  # type: ignore[type-var]
    copy = object.__new__(type(frozen))
    fields = copy.__dict__
    fields.update(frozen.__dict__)
    fields["names"] = names  # the frozen dataclass's own field, set before anyone sees the copy
    return copy


def truthy(value: Any) -> bool:
    """Azure's cast to boolean: null, false, 0, NaN and '' are false; everything else is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == value and value != 0
    return not (isinstance(value, str) and value == "")
