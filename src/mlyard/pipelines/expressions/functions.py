"""The built-in functions of the Microsoft docs page "Expressions", with their argument counts.

Each implementation gets the evaluation and its argument nodes, so `and`, `or`, `in`, `iif` and
`coalesce` evaluate lazily and short-circuit. Names are matched ignoring case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlyard.pipelines.expressions import status
from mlyard.pipelines.expressions.ast import Node
from mlyard.pipelines.expressions.context import Evaluation
from mlyard.pipelines.expressions.formatting import check_size, format_text, to_json
from mlyard.pipelines.expressions.values import (
    compare,
    equals,
    fold,
    is_collection,
    to_bool,
    to_number,
    to_text,
    try_to_string,
)

Implementation = Callable[[Evaluation, tuple[Node, ...]], Any]
MANY = -1


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int  # MANY = no limit
    implement: Implementation


def _and(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return all(to_bool(ev.value(arg)) for arg in args)


def _or(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return any(to_bool(ev.value(arg)) for arg in args)


def _not(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return not to_bool(ev.value(args[0]))


def _xor(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return to_bool(ev.value(args[0])) != to_bool(ev.value(args[1]))


def _comparison(test: Callable[[int], bool]) -> Implementation:
    def implement(ev: Evaluation, args: tuple[Node, ...]) -> Any:
        return test(compare(ev.value(args[0]), ev.value(args[1])))

    return implement


def _eq(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return equals(ev.value(args[0]), ev.value(args[1]))


def _ne(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return not equals(ev.value(args[0]), ev.value(args[1]))


def _in(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    left = ev.value(args[0])
    return any(equals(left, ev.value(arg)) for arg in args[1:])


def _not_in(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return not _in(ev, args)


def _texts(ev: Evaluation, args: tuple[Node, ...]) -> list[str]:
    return [to_text(ev.value(arg)) for arg in args]


def _contains(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    text, part = _texts(ev, args)
    return fold(part) in fold(text)


def _starts_with(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    text, part = _texts(ev, args)
    return fold(text).startswith(fold(part))


def _ends_with(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    text, part = _texts(ev, args)
    return fold(text).endswith(fold(part))


def _contains_value(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    collection, wanted = ev.value(args[0]), ev.value(args[1])
    if isinstance(collection, Mapping):
        collection = list(collection.values())
    if not isinstance(collection, list | tuple):
        return False
    return any(equals(wanted, item) for item in collection)


def _format(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    template = to_text(ev.value(args[0]))
    cache: dict[int, Any] = {}

    def argument(index: int) -> Any:
        if index not in cache:
            cache[index] = ev.value(args[index + 1])
        return cache[index]

    return format_text(template, argument, len(args) - 1)


def _coalesce(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    for arg in args:
        value = ev.value(arg)
        if value is not None and value != "":
            return value
    return None


def _join(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    separator, items = ev.value(args[0]), ev.value(args[1])
    if not isinstance(items, list | tuple):
        return try_to_string(items) or ""
    texts = [try_to_string(item) or "" for item in items]
    glue = to_text(separator) if len(texts) > 1 else ""
    check_size(sum(map(len, texts)) + len(glue) * max(len(texts) - 1, 0))
    return glue.join(texts)


def _lower(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return to_text(ev.value(args[0])).lower()


def _upper(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return to_text(ev.value(args[0])).upper()


def _trim(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return to_text(ev.value(args[0])).strip()


def _replace(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    text, old, new = _texts(ev, args)
    if not old:
        return text
    check_size(len(text) + text.count(old) * (len(new) - len(old)))
    return text.replace(old, new)


def _split(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    text, separator = _texts(ev, args)
    return text.split(separator) if separator else [text]


def _length(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    value = ev.value(args[0])
    return len(value) if is_collection(value) else len(to_text(value))


def _convert_to_json(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return to_json(ev.value(args[0]))


def _counter(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    prefix = to_text(ev.value(args[0]))
    seed_value = to_number(ev.value(args[1]))
    seed = int(seed_value) if math.isfinite(seed_value) else 0
    state = ev.context.counter
    return seed if state is None else state(prefix, seed)


def _iif(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return ev.value(args[1] if to_bool(ev.value(args[0])) else args[2])


_SPECS = (
    FunctionSpec("always", 0, 0, status.always),
    FunctionSpec("and", 2, MANY, _and),
    FunctionSpec("canceled", 0, 0, status.canceled),
    FunctionSpec("coalesce", 2, MANY, _coalesce),
    FunctionSpec("contains", 2, 2, _contains),
    FunctionSpec("containsValue", 2, 2, _contains_value),
    FunctionSpec("convertToJson", 1, 1, _convert_to_json),
    FunctionSpec("counter", 2, 2, _counter),
    FunctionSpec("endsWith", 2, 2, _ends_with),
    FunctionSpec("eq", 2, 2, _eq),
    FunctionSpec("failed", 0, MANY, status.failed),
    FunctionSpec("format", 1, MANY, _format),
    FunctionSpec("ge", 2, 2, _comparison(lambda c: c >= 0)),
    FunctionSpec("gt", 2, 2, _comparison(lambda c: c > 0)),
    FunctionSpec("iif", 3, 3, _iif),
    FunctionSpec("in", 1, MANY, _in),
    FunctionSpec("join", 2, 2, _join),
    FunctionSpec("le", 2, 2, _comparison(lambda c: c <= 0)),
    FunctionSpec("length", 1, 1, _length),
    FunctionSpec("lower", 1, 1, _lower),
    FunctionSpec("lt", 2, 2, _comparison(lambda c: c < 0)),
    FunctionSpec("ne", 2, 2, _ne),
    FunctionSpec("not", 1, 1, _not),
    FunctionSpec("notIn", 1, MANY, _not_in),
    FunctionSpec("or", 2, MANY, _or),
    FunctionSpec("replace", 3, 3, _replace),
    FunctionSpec("split", 2, 2, _split),
    FunctionSpec("startsWith", 2, 2, _starts_with),
    FunctionSpec("succeeded", 0, MANY, status.succeeded),
    FunctionSpec("succeededOrFailed", 0, MANY, status.succeeded_or_failed),
    FunctionSpec("trim", 1, 1, _trim),
    FunctionSpec("upper", 1, 1, _upper),
    FunctionSpec("xor", 2, 2, _xor),
)

#: Canonical name -> spec.
FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}
_BY_FOLDED = {spec.name.lower(): spec for spec in _SPECS}
STATUS_FUNCTIONS = frozenset({"always", "canceled", "failed", "succeeded", "succeededOrFailed"})


def lookup_function(name: str) -> FunctionSpec | None:
    return _BY_FOLDED.get(name.lower())


def supported_names() -> list[str]:
    return sorted(FUNCTIONS, key=str.lower)


def arity_text(spec: FunctionSpec) -> str:
    if spec.max_args == MANY:
        return f"at least {spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    if spec.min_args == spec.max_args:
        count = spec.min_args
        return "no arguments" if count == 0 else f"{count} argument{'s' if count != 1 else ''}"
    return f"{spec.min_args} to {spec.max_args} arguments"
