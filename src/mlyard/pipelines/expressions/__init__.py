"""The Azure Pipelines expression language: `${{ }}` template expressions, `$[ ]` runtime expressions,
conditions and `$(var)` macros. Semantics follow the Microsoft docs pages "Expressions", "Conditions",
"Template expressions" and "Define variables".
"""

from __future__ import annotations

from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions.ast import FunctionCall, Index, Literal, NamedValue, Node, Wildcard
from mlyard.pipelines.expressions.context import ExpressionContext
from mlyard.pipelines.expressions.evaluator import evaluate, evaluate_condition
from mlyard.pipelines.expressions.interpolation import interpolate, is_runtime_expression
from mlyard.pipelines.expressions.macros import expand_macros
from mlyard.pipelines.expressions.parser import parse_expression
from mlyard.pipelines.expressions.values import EvaluationFailure, Version, to_text


def to_string(value: Any) -> str:
    """Azure's conversion to string: True/False, numbers as `0.#######`, null as ''.

    Arrays and objects have no string form (Azure: "Unable to convert from Array to String"); they raise
    ExpressionError. Use `join()` or `convertToJson()` in the expression instead.
    """
    try:
        return to_text(value)
    except EvaluationFailure as failure:
        raise ExpressionError(str(failure)) from None


__all__ = [
    "ExpressionContext",
    "ExpressionError",
    "FunctionCall",
    "Index",
    "Literal",
    "NamedValue",
    "Node",
    "Version",
    "Wildcard",
    "evaluate",
    "evaluate_condition",
    "expand_macros",
    "interpolate",
    "is_runtime_expression",
    "parse_expression",
    "to_string",
]
