"""Evaluate a parsed expression against an ExpressionContext."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions.ast import FunctionCall, Index, Literal, NamedValue, Node, named_values
from mlyard.pipelines.expressions.context import BUILTIN_NAMES, ExpressionContext
from mlyard.pipelines.expressions.functions import FUNCTIONS
from mlyard.pipelines.expressions.lexer import located, shown
from mlyard.pipelines.expressions.parser import parse_expression
from mlyard.pipelines.expressions.values import EvaluationFailure, Filtered, to_bool, try_to_string

_BUILTIN_BY_FOLDED = {name.lower(): name for name in BUILTIN_NAMES}
_MISSING = object()


def evaluate(expression: str | Node, context: ExpressionContext) -> Any:
    """Evaluate a bare expression (no `${{ }}` / `$[ ]` wrapper) and return its typed value."""
    if isinstance(expression, str):
        node, used, path = _compiled(expression)
        text = expression
    else:
        node, used, path = expression, tuple(named_values(expression)), None
        text = expression.source or f"<expression at column {expression.column}>"
    _check_named_values(used, context, text)
    if path is not None:  # `name`, `name.key`, `name['key'].key`...: no tree to walk (the common case)
        result = _named(context, path[0])
        for key in path[1:]:
            result = index(result, key)
    else:
        result = _Evaluation(context, text).value(node)
    return list(result) if isinstance(result, Filtered) else result


def evaluate_condition(expression: str, context: ExpressionContext) -> bool:
    """Evaluate a condition and cast its result to a boolean with Azure's rules."""
    return to_bool(evaluate(expression, context))


@lru_cache(maxsize=4096)
def _compiled(text: str) -> tuple[Node, tuple[NamedValue, ...], tuple[Any, ...] | None]:
    node = parse_expression(text)
    return node, tuple(named_values(node)), _path(node)


def _path(node: Node) -> tuple[Any, ...] | None:
    """(name, key, ...) of a named value followed by literal indexes, else None."""
    keys: list[Any] = []
    while isinstance(node, Index) and isinstance(node.key, Literal):
        keys.append(node.key.value)
        node = node.target
    if not isinstance(node, NamedValue):
        return None
    return (node.name, *reversed(keys))


def _check_named_values(used: tuple[NamedValue, ...], context: ExpressionContext, text: str) -> None:
    if not used:
        return
    allowed = _folded(frozenset(context.allowed)) if context.allowed is not None else None
    for named in used:
        folded = named.name.lower()
        builtin = _BUILTIN_BY_FOLDED.get(folded)
        if builtin is not None and (allowed is None or folded in allowed):
            continue  # the common case first: no need to fold the loop names
        if context.names and _has_key(context.names, folded):
            continue
        what = f"'{named.name}' is not available here" if builtin else f"unrecognized value '{named.name}'"
        raise ExpressionError(
            f"{what} at column {named.column} in: {shown(text)}; allowed: {_allowed_text(context)}",
            expression=text,
            column=named.column,
        )


@lru_cache(maxsize=64)
def _folded(names: frozenset[str]) -> frozenset[str]:
    """The names in lower case (``allowed`` is one of a few sets: cached)."""
    return frozenset(name.lower() for name in names)


def _allowed_text(context: ExpressionContext) -> str:
    if context.allowed is None:
        names = list(BUILTIN_NAMES)
    else:
        names = [_BUILTIN_BY_FOLDED.get(name.lower(), name) for name in context.allowed]
    names.extend(str(name) for name in context.names)
    return ", ".join(sorted(set(names), key=str.lower)) or "no named values"


class _Evaluation:
    def __init__(self, context: ExpressionContext, text: str) -> None:
        self.context = context
        self.text = text

    def value(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, FunctionCall):
            return self.call(node)
        if isinstance(node, Index):
            return index(self.value(node.target), self.value(node.key))
        if isinstance(node, NamedValue):
            return self.named(node.name)
        return wildcard(self.value(node.target))

    def named(self, name: str) -> Any:
        return _named(self.context, name)

    def call(self, node: FunctionCall) -> Any:
        spec = FUNCTIONS[node.name]
        try:
            return spec.implement(self, node.args)
        except EvaluationFailure as failure:
            raise located(f"{node.name}(): {failure}", node.column, self.text) from None


def _named(context: ExpressionContext, name: str) -> Any:
    """A named value: a loop name first (case-insensitive), then a built-in one."""
    names = context.names
    if names:
        found = lookup(names, name, _MISSING)
        if found is not _MISSING:
            return found
    builtin = _BUILTIN_BY_FOLDED.get(name.lower())
    return context.builtin(builtin) if builtin else None


def _has_key(mapping: Mapping[str, Any], name: str) -> bool:
    folded = name.lower()
    return any(str(key).lower() == folded for key in mapping)


def lookup(mapping: Mapping[Any, Any], key: str, missing: Any = None) -> Any:
    """A property of an object: exact key first, then ignoring case; a miss is null (or ``missing``)."""
    if key in mapping:
        return mapping[key]
    folded = key.lower()
    for candidate, item in mapping.items():
        if isinstance(candidate, str) and candidate.lower() == folded:
            return item
    return missing


def index(target: Any, key: Any) -> Any:
    """`target[key]`: objects by (case-insensitive) key, arrays by number; anything else is null."""
    if isinstance(target, Filtered):
        found = (index(item, key) for item in target)
        return Filtered(item for item in found if item is not None)
    if isinstance(target, Mapping):
        name = try_to_string(key) if not isinstance(key, str) else key
        return None if name is None else lookup(target, name)
    if isinstance(target, list | tuple) and _is_position(key) and 0 <= int(key) < len(target):
        return target[int(key)]
    return None


def _is_position(key: Any) -> bool:
    if isinstance(key, bool) or not isinstance(key, int | float):
        return False
    return math.isfinite(key) and float(key).is_integer()


def wildcard(target: Any) -> Filtered:
    """`target.*`: the elements of an array or the values of an object, as a filtered array."""
    if isinstance(target, Filtered):
        flat: list[Any] = []
        for item in target:
            flat.extend(wildcard(item))
        return Filtered(flat)
    if isinstance(target, Mapping):
        return Filtered(target.values())
    if isinstance(target, list | tuple):
        return Filtered(target)
    return Filtered()
