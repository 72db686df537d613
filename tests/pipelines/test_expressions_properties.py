"""Property-based tests: whatever text comes in, the expression engine answers or raises ExpressionError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlyard.pipelines.expressions import (
    ExpressionContext,
    ExpressionError,
    evaluate,
    evaluate_condition,
    expand_macros,
    interpolate,
    parse_expression,
    to_string,
)
from mlyard.pipelines.expressions.functions import FUNCTIONS, MANY

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

CONTEXT = ExpressionContext(
    variables={"a": "1", "b": "", "Build.SourceBranch": "refs/heads/main", "flag": "true"},
    parameters={"list": [1, "two", {"x": 3}, [4]], "obj": {"k": "v", "n": 2}, "on": True, "n": 1.5},
    dependencies={"A": {"result": "Succeeded", "outputs": {"s.v": "x"}}},
    stage_dependencies={"S": {"J": {"result": "Failed", "outputs": {"s.v": "y"}}}},
    pipeline={"startTime": datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)},
    dependency_results={"A": "Succeeded"},
    names={"item": {"id": 1, "tags": ["a", "b"]}},
)
RESTRICTED = ExpressionContext(allowed=frozenset({"parameters"}), job_status="Failed", canceled=True)

TOKENS = [
    *FUNCTIONS,
    " ",
    *[
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "*",
        "'",
        "''",
        "-",
        "{",
        "}",
        "{{",
        "}}",
        "${{",
        "$(",
        "$[",
        "true",
        "False",
        "null",
        "0",
        "-1",
        "1.5",
        ".5",
        "1.2.3",
        "99999999999999999999999",
        "1e5",
    ],
    *[
        "'a'",
        "'{0}'",
        "'{0:yyyy}'",
        "'1,000'",
        "'1.2'",
        "''",
        "'x''y'",
        "variables",
        "parameters",
        "dependencies",
        "stageDependencies",
    ],
    *[
        "pipeline",
        "item",
        "unknown",
        "variables.a",
        "parameters.list",
        "parameters.obj",
        "pipeline.startTime",
        "item.tags",
        ".*",
        "[0]",
    ],
]


def _safe(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ExpressionError as error:
        assert str(error)


@SETTINGS
@given(st.text(max_size=60))
def test_random_text_parses_or_raises_expression_error(text: str) -> None:
    _safe(parse_expression, text)
    _safe(evaluate, text, CONTEXT)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.sampled_from(["", " ", "\n"]))
def test_token_soup_evaluates_or_raises_expression_error(tokens: list[str], glue: str) -> None:
    text = glue.join(tokens)
    _safe(evaluate, text, CONTEXT)
    _safe(evaluate_condition, text, RESTRICTED)
    _safe(interpolate, text, CONTEXT)
    assert isinstance(expand_macros(text, {"a": "b"}), str)


LEAVES = st.sampled_from(
    [
        *[
            "true",
            "false",
            "null",
            "0",
            "-2.5",
            "3",
            "1.2.3",
            "'abc'",
            "'ABC'",
            "''",
            "'1,000'",
            "'{0}-{1}'",
            "'{0:yyyyMMdd}'",
            "variables.a",
        ],
        *["variables['Build.SourceBranch']", "variables.b", "variables.none", "parameters.list", "parameters.obj"],
        *[
            "parameters.on",
            "parameters.n",
            "parameters.list[2].x",
            "dependencies.A.result",
            "stageDependencies.S.J.result",
        ],
        *["dependencies.A.outputs['s.v']", "pipeline.startTime", "item.tags", "item.*", "parameters.list.*"],
    ]
)


def _calls(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def build(name: str, args: list[str]) -> str:
        spec = FUNCTIONS[name]
        high = spec.max_args if spec.max_args != MANY else spec.min_args + 2
        count = max(spec.min_args, min(len(args), high))
        padded = (args * (count // max(len(args), 1) + 1))[:count] if args else ["'x'"] * count
        return f"{name}({', '.join(padded)})"

    return st.builds(build, st.sampled_from(sorted(FUNCTIONS)), st.lists(children, max_size=4))


EXPRESSIONS = st.recursive(LEAVES, _calls, max_leaves=12)


@SETTINGS
@given(EXPRESSIONS)
def test_well_formed_expressions_evaluate_or_raise_expression_error(text: str) -> None:
    parse_expression(text)  # generated calls always have a valid argument count
    for context in (CONTEXT, RESTRICTED):
        try:
            result = evaluate(text, context)
        except ExpressionError as error:
            assert str(error)
            continue
        _safe(to_string, result)
        assert isinstance(evaluate_condition(text, context), bool)


@SETTINGS
@given(st.text(alphabet="${}()[]'a. x", max_size=40))
def test_interpolation_of_brace_soup_raises_only_expression_error(text: str) -> None:
    _safe(interpolate, text, CONTEXT)
