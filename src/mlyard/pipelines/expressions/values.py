"""Values of the expression language and Azure's casting rules between them.

Kinds: Null (None), Boolean (bool), Number (int/float), String (str), Version, DateTime (datetime),
Array (list/tuple), Object (any Mapping). The rules follow the "Type casting" table of the Microsoft
docs page "Expressions": comparisons cast the right side to the kind of the left side, strings compare
ordinally ignoring case, numbers print as `0.#######`, booleans as `True`/`False`, null as ''.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

INT32_MAX = 2**31 - 1


class EvaluationFailure(Exception):
    """A value could not be used as asked. The evaluator adds the function, column and expression."""


@dataclass(frozen=True)
class Version:
    """A .NET-style version of 2 to 4 numeric components (`1.2`, `1.2.3`, `1.2.3.4`)."""

    parts: tuple[int, ...]

    def __str__(self) -> str:
        return ".".join(str(part) for part in self.parts)

    def key(self) -> tuple[int, ...]:
        """Missing components sort before 0, as in .NET (1.2 < 1.2.0)."""
        return self.parts + (-1,) * (4 - len(self.parts))


class Filtered(list):  # type: ignore[type-arg]
    """A filtered array (`foo.*`): later dereferences apply to every element and drop misses."""


def kind_of(value: Any) -> str:
    if value.__class__ is str:  # the common case first
        return "String"
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Version):
        return "Version"
    if isinstance(value, datetime):
        return "DateTime"
    if isinstance(value, list | tuple):
        return "Array"
    if isinstance(value, Mapping):
        return "Object"
    return "String"  # anything else is used through its text


def is_collection(value: Any) -> bool:
    return isinstance(value, list | tuple | Mapping)


def describe(value: Any) -> str:
    """A value as shown in error messages: `String 'abc'`, `Number 1.5`, `Array`."""
    kind = kind_of(value)
    if kind == "String":
        return "String '" + str(value).replace("'", "''") + "'"
    if kind in ("Null", "Array", "Object"):
        return kind
    return f"{kind} {to_text(value)}"


def cast_error(value: Any, to_kind: str) -> EvaluationFailure:
    return EvaluationFailure(f"cannot convert {describe(value)} to {to_kind}")


# ---------------------------------------------------------------- ordinal ignore-case strings


def fold(text: str) -> str:
    """Upper-case every character on its own, like .NET's OrdinalIgnoreCase."""
    if text.isascii():
        return text.upper()
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in text)


def compare_text(left: str, right: str) -> int:
    a, b = fold(left), fold(right)
    return (a > b) - (a < b)


# ---------------------------------------------------------------- conversions


def to_bool(value: Any) -> bool:
    kind = kind_of(value)
    if kind == "Boolean":
        return bool(value)
    if kind == "Number":
        return bool(value != 0)
    if kind == "String":
        return str(value) != ""
    return kind != "Null"


_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)")
_WHITE = " \t\n\v\f\r"


def parse_number(text: str) -> float | None:
    """.NET Double.TryParse with AllowDecimalPoint, AllowLeadingSign, AllowThousands and white space."""
    stripped = text.strip(_WHITE)
    if not _NUMBER_TEXT.fullmatch(stripped):
        return None
    return float(stripped.replace(",", ""))


def try_to_number(value: Any) -> float | None:
    kind = kind_of(value)
    if kind == "Boolean":
        return 1.0 if value else 0.0
    if kind == "Number":
        return float(value)
    if kind == "Null":
        return 0.0
    if kind == "String":
        text = str(value)
        return 0.0 if text == "" else parse_number(text)
    return None


def to_number(value: Any) -> float:
    number = try_to_number(value)
    if number is None:
        raise cast_error(value, "Number")
    return number


def format_number(value: int | float) -> str:
    """.NET format `0.#######`: up to 7 decimals, no exponent, no thousands separator."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = f"{value:.7f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_datetime(value: datetime) -> str:
    """.NET format `yyyy-MM-dd HH:mm:sszzz` (a naive datetime is taken as UTC)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    offset = aware.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return aware.strftime("%Y-%m-%d %H:%M:%S") + f"{sign}{hours:02d}:{mins:02d}"


def try_to_string(value: Any) -> str | None:
    if value.__class__ is str:  # the common case: text is its own text
        return value  # type: ignore[no-any-return]
    kind = kind_of(value)
    if kind == "Null":
        return ""
    if kind == "Boolean":
        return "True" if value else "False"
    if kind == "Number":
        return format_number(value)
    if kind == "DateTime":
        return format_datetime(value)
    if kind in ("Array", "Object"):
        return None
    return str(value)


def to_text(value: Any) -> str:
    text = try_to_string(value)
    if text is None:
        raise cast_error(value, "String")
    return text


def parse_version(text: str) -> Version | None:
    """.NET Version.TryParse: 2 to 4 non-negative Int32 components."""
    pieces = text.split(".")
    if not 2 <= len(pieces) <= 4:
        return None
    parts: list[int] = []
    for piece in pieces:
        digits = piece.strip(_WHITE).removeprefix("+")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 10 or int(digits) > INT32_MAX:
            return None
        parts.append(int(digits))
    return Version(tuple(parts))


def try_to_version(value: Any) -> Version | None:
    kind = kind_of(value)
    if kind == "Version":
        return value  # type: ignore[no-any-return]
    if kind == "Number":
        return parse_version(format_number(value))
    if kind == "String":
        return parse_version(str(value))
    return None


_DATETIME_TEXT = re.compile(
    r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?"
    r"(Z|[+-]\d{1,2}:\d{1,2})?"
)


def parse_datetime(text: str) -> datetime | None:
    """`yyyy-MM-dd HH:mm:ss[.fffffff][Z|+hh:mm]` (no offset means UTC here)."""
    match = _DATETIME_TEXT.fullmatch(text.strip(_WHITE))
    if not match:
        return None
    year, _, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = UTC
    if offset and offset != "Z":
        hours, mins = offset[1:].split(":")
        delta = timedelta(hours=int(hours), minutes=int(mins))
        if delta >= timedelta(hours=24):
            return None
        zone = timezone(-delta if offset[0] == "-" else delta)
    micro = int((fraction or "0").ljust(7, "0")) // 10
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone)
    except ValueError:
        return None


def try_to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return parse_datetime(value)
    return None


# ---------------------------------------------------------------- equality and ordering


def equals(left: Any, right: Any) -> bool:
    """Azure `eq`: cast the right value to the kind of the left one; a failed cast is not equal."""
    kind = kind_of(left)
    if kind == "Boolean":
        return bool(left) == to_bool(right)
    if kind == "Number":
        number = try_to_number(right)
        return number is not None and float(left) == number
    if kind == "String":
        text = try_to_string(right)
        return text is not None and fold(str(left)) == fold(text)
    if kind == "Version":
        version = try_to_version(right)
        return version is not None and left.key() == version.key()
    if kind == "DateTime":
        moment = try_to_datetime(right)
        return moment is not None and try_to_datetime(left) == moment
    if kind in ("Array", "Object"):
        return left is right
    return right is None or right == ""  # Null equals null and the empty string


def compare(left: Any, right: Any) -> int:
    """Azure `gt`/`lt`/...: cast the right value to the kind of the left one; a failed cast is an error."""
    kind = kind_of(left)
    if kind not in ("Boolean", "Number", "String", "Version", "DateTime"):
        left, kind = to_number(left), "Number"
    if kind == "Boolean":
        return int(bool(left)) - int(to_bool(right))
    if kind == "Number":
        a, b = float(left), to_number(right)
        return (a > b) - (a < b)
    if kind == "String":
        return compare_text(str(left), to_text(right))
    if kind == "Version":
        version = try_to_version(right)
        if version is None or not isinstance(left, Version):
            raise cast_error(right, "Version")
        a_key, b_key = left.key(), version.key()
        return (a_key > b_key) - (a_key < b_key)
    moment = try_to_datetime(right)
    if moment is None:
        raise cast_error(right, "DateTime")
    mine = try_to_datetime(left)
    assert mine is not None
    return (mine > moment) - (mine < moment)
