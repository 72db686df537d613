"""The syntax tree of an expression. Every node records the 1-based column where it starts.

The root node returned by the parser also keeps the expression text in `source` (used in error messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Literal:
    """A boolean, null, number, string or version written in the expression."""

    value: Any
    column: int
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class NamedValue:
    """A top-level name such as `variables`, `parameters` or an `each` loop variable."""

    name: str
    column: int
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Index:
    """`target[key]` or `target.key` (a property dereference is an index by a string literal)."""

    target: Node
    key: Node
    column: int
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Wildcard:
    """`target.*` or `target[*]`: a filtered array of all the elements of the target."""

    target: Node
    column: int
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class FunctionCall:
    """`name(arg, ...)`; `name` is the canonical spelling of the function."""

    name: str
    args: tuple[Node, ...]
    column: int
    source: str = field(default="", compare=False, repr=False)


Node = Literal | NamedValue | Index | Wildcard | FunctionCall


def named_values(node: Node) -> list[NamedValue]:
    """Every named value used anywhere in `node`, in the order they are written."""
    found: list[NamedValue] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, NamedValue):
            found.append(current)
        elif isinstance(current, Index):
            stack.extend((current.key, current.target))
        elif isinstance(current, Wildcard):
            stack.append(current.target)
        elif isinstance(current, FunctionCall):
            stack.extend(reversed(current.args))
    return found
