"""The syntax of every template expression of a file as written, in every branch.

The structure of a pipeline is checked on what the expansion produces ("Template expressions": a
``${{ if }}`` branch never taken is not part of the pipeline), so a branch that is never taken must only
be YAML with valid expressions: each ``${{ }}`` in a key or a value parses, and so do the conditions of
``${{ if }}``/``${{ elseif }}`` and the collections of ``${{ each }}``.
"""

from __future__ import annotations

import re
from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions import parse_expression
from mlyard.pipelines.expressions.interpolation import split_template
from mlyard.pipelines.schema import join_path
from mlyard.pipelines.source import Reporter

_CONDITION = re.compile(r"^\$\{\{\s*(?:if|elseif)\s+(.*?)\s*\}\}$", re.DOTALL | re.IGNORECASE)
_EACH = re.compile(r"^\$\{\{\s*each\s+[A-Za-z_][A-Za-z0-9_]*\s+in\s+(.*?)\s*\}\}$", re.DOTALL | re.IGNORECASE)
_KEYWORD = re.compile(r"^\$\{\{\s*(?:else|insert)\s*\}\}$", re.IGNORECASE)
_NOT_EXPANDED = frozenset({"parameters", "trigger", "pr"})  # root keys the expansion leaves alone
MAX_NODES = 1_000_000  # a loaded file is already bounded in size; this bounds the walk itself


def check_syntax(tree: Any, reporter: Reporter) -> None:
    """Add a problem for every template expression of ``tree`` (a loaded file) that does not parse."""
    stack: list[tuple[Any, Any]] = []
    if isinstance(tree, dict):
        stack.extend((tree, key) for key in tree if key not in _NOT_EXPANDED)
    seen = 0
    paths: dict[int, str] = {id(tree): ""}
    while stack and seen < MAX_NODES:
        seen += 1
        owner, key = stack.pop()
        path = join_path(paths.get(id(owner), ""), key)
        if isinstance(owner, dict) and isinstance(key, str) and "${{" in key:
            _check_key(owner, key, path, reporter)
        value = owner[key]
        if isinstance(value, str):
            if "${{" in value:
                _check_text(value, owner, key, path, reporter)
        elif isinstance(value, dict):
            paths[id(value)] = path
            stack.extend((value, name) for name in value)
        elif isinstance(value, list):
            paths[id(value)] = path
            stack.extend((value, index) for index in range(len(value)))


def _check_key(owner: Any, key: str, path: str, reporter: Reporter) -> None:
    if _KEYWORD.match(key):
        return
    directive = _CONDITION.match(key) or _EACH.match(key)
    if directive is None:
        _check_text(key, owner, key, path, reporter)
        return
    expression = directive.group(1)
    try:
        parse_expression(expression)
    except ExpressionError as exc:
        reporter.at(owner, key, path, f"invalid expression '{expression.strip()}': {exc.message}")
    except RecursionError:
        reporter.at(owner, key, path, f"expression '{expression.strip()[:80]}' is nested too deeply")


def _check_text(value: str, owner: Any, key: Any, path: str, reporter: Reporter) -> None:
    try:
        for is_expression, body in split_template(value):
            if is_expression:
                parse_expression(body.strip())
    except ExpressionError as exc:
        reporter.at(owner, key, path, f"invalid expression in '{value.strip()}': {exc.message}")
    except RecursionError:
        reporter.at(owner, key, path, f"expression in '{value.strip()[:80]}' is nested too deeply")
