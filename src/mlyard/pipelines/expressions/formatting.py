"""The `format` and `convertToJson` functions.

`format('{0} Build', x)` inserts arguments by index; `{{` and `}}` are literal braces; a DateTime argument
(e.g. `pipeline.startTime`) takes .NET custom date specifiers: `format('{0:yyyyMMdd}', pipeline.startTime)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from mlyard.pipelines.expressions.values import (
    EvaluationFailure,
    Version,
    format_number,
    kind_of,
    to_text,
    try_to_datetime,
)

MAX_RESULT = 1_000_000  # characters; Azure limits the memory an expression may use


def check_size(length: int) -> None:
    if length > MAX_RESULT:
        raise EvaluationFailure(f"the result would be {length} characters long; the maximum is {MAX_RESULT}")


def format_text(template: str, argument: Callable[[int], Any], count: int) -> str:
    """Expand `template`; `argument(i)` evaluates the i-th argument (0-based) of `count` supplied."""
    out: list[str] = []
    index, size = 0, 0
    while index < len(template):
        left, right = template.find("{", index), template.find("}", index)
        if left >= 0 and (right < 0 or right > left):
            if template.startswith("{{", left):
                piece, index = template[index : left + 1], left + 2
            else:
                arg_index, specifiers, end = _read_placeholder(template, left)
                if arg_index >= count:
                    raise EvaluationFailure(
                        f"the format string references more arguments than were supplied: {template}"
                    )
                piece = template[index:left] + _format_argument(argument(arg_index), specifiers)
                index = end + 1
        elif right >= 0:
            if not template.startswith("}}", right):
                raise EvaluationFailure(f"the format string is invalid: {template}")
            piece, index = template[index : right + 1], right + 2
        else:
            piece, index = template[index:], len(template)
        size += len(piece)
        check_size(size)
        out.append(piece)
    return "".join(out)


def _read_placeholder(template: str, left: int) -> tuple[int, str, int]:
    """Read `{N}` or `{N:specifiers}` at `left`; returns (N, specifiers, index of the closing brace)."""
    position = left + 1
    while position < len(template) and template[position].isdigit() and template[position].isascii():
        position += 1
    digits = template[left + 1 : position]
    if not digits or len(digits) > 3 or int(digits) > 255:
        raise EvaluationFailure(f"the format string is invalid: {template}")
    if position < len(template) and template[position] == "}":
        return int(digits), "", position
    if position >= len(template) or template[position] != ":":
        raise EvaluationFailure(f"the format string is invalid: {template}")
    specifiers: list[str] = []
    position += 1
    while position < len(template):
        char = template[position]
        if char != "}":
            specifiers.append(char)
            position += 1
        elif template.startswith("}}", position):
            specifiers.append("}")
            position += 2
        else:
            return int(digits), "".join(specifiers), position
    raise EvaluationFailure(f"the format string is invalid: {template}")


def _format_argument(value: Any, specifiers: str) -> str:
    if not specifiers:
        return to_text(value)
    if kind_of(value) != "DateTime":
        raise EvaluationFailure(f"the format specifiers '{specifiers}' are not valid for a {kind_of(value)}")
    moment = try_to_datetime(value)
    assert moment is not None
    return format_date(moment, specifiers)


_DATE_PARTS: dict[str, Callable[[datetime], str]] = {
    "yyyy": lambda d: f"{d.year:04d}",
    "yy": lambda d: f"{d.year % 100:02d}",
    "MM": lambda d: f"{d.month:02d}",
    "M": lambda d: str(d.month),
    "dd": lambda d: f"{d.day:02d}",
    "d": lambda d: str(d.day),
    "HH": lambda d: f"{d.hour:02d}",
    "H": lambda d: str(d.hour),
    "mm": lambda d: f"{d.minute:02d}",
    "m": lambda d: str(d.minute),
    "ss": lambda d: f"{d.second:02d}",
    "s": lambda d: str(d.second),
    "zzz": lambda d: _offset(d),
    "K": lambda d: _offset(d),
}


def format_date(moment: datetime, specifiers: str) -> str:
    """The .NET custom date specifiers Azure accepts; `\\x` is a literal x; any other letter is an error."""
    out: list[str] = []
    index = 0
    while index < len(specifiers):
        char = specifiers[index]
        end = index + 1
        if char == "\\":
            if end >= len(specifiers):
                raise EvaluationFailure(f"the format specifiers '{specifiers}' are not valid for a DateTime")
            out.append(specifiers[end])
            index = end + 1
            continue
        while end < len(specifiers) and specifiers[end] == char:
            end += 1
        run = specifiers[index:end]
        if run in _DATE_PARTS:
            out.append(_DATE_PARTS[run](moment))
        elif char == "f" and len(run) <= 7:
            out.append(f"{moment.microsecond:06d}0"[: len(run)])
        elif char == " ":
            out.append(run)
        else:
            raise EvaluationFailure(f"the format specifiers '{specifiers}' are not valid for a DateTime")
        index = end
    return "".join(out)


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    hours, mins = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else '+'}{hours:02d}:{mins:02d}"


def to_json(value: Any) -> str:
    """`convertToJson`: indented JSON (2 spaces) like Newtonsoft's Formatting.Indented."""
    return json.dumps(_jsonable(value, 0), indent=2, ensure_ascii=False)


def _jsonable(value: Any, depth: int) -> Any:
    if depth > 100:
        raise EvaluationFailure("the value is nested too deeply to convert to JSON")
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 2**63 else value
    if isinstance(value, float) and value != value:
        return format_number(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Version):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
