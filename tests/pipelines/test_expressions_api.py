"""The public API of mlyard.pipelines.expressions beyond the table-driven cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlyard.errors import UserError
from mlyard.pipelines.expressions import (
    ExpressionContext,
    ExpressionError,
    FunctionCall,
    Version,
    evaluate,
    evaluate_condition,
    interpolate,
    parse_expression,
    to_string,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "True"),
        (False, "False"),
        (None, ""),
        (3, "3"),
        (1.0, "1"),
        (-1.25, "-1.25"),
        (1e20, "100000000000000000000"),
        (0.000000001, "0"),
        ("x", "x"),
        (Version((1, 2, 3)), "1.2.3"),
        (datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC), "2024-03-05 07:08:09+00:00"),
        (datetime(2024, 3, 5, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5))), "2024-03-05 07:08:09-05:00"),
    ],
)
def test_to_string_follows_azure(value: object, text: str) -> None:
    assert to_string(value) == text


@pytest.mark.parametrize(("value", "kind"), [([1], "Array"), ({"a": 1}, "Object")])
def test_to_string_of_collections_is_an_error(value: object, kind: str) -> None:
    with pytest.raises(ExpressionError, match=f"^cannot convert {kind} to String$"):
        to_string(value)


def test_parse_results_are_cached() -> None:
    text = "and(succeeded(), eq(variables['Build.Reason'], 'Manual'))"
    assert parse_expression(text) is parse_expression(text)


def test_parse_tree_shape() -> None:
    node = parse_expression("eq(variables.a, 'b')")
    assert isinstance(node, FunctionCall)
    assert node.name == "eq"
    assert node.column == 1
    assert [arg.column for arg in node.args] == [4, 17]


def test_function_names_are_canonical_in_the_tree() -> None:
    node = parse_expression("STARTSWITH('a', 'A')")
    assert isinstance(node, FunctionCall)
    assert node.name == "startsWith"


def test_evaluate_accepts_a_parsed_node() -> None:
    node = parse_expression("format('{0}-{1}', variables.a, parameters.b)")
    context = ExpressionContext(variables={"a": "x"}, parameters={"b": 2})
    assert evaluate(node, context) == "x-2"


def test_errors_carry_column_and_expression_and_are_user_errors() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse_expression("eq(1, 2")
    error = raised.value
    assert isinstance(error, UserError)
    assert error.column == 8
    assert error.expression == "eq(1, 2"


def test_counter_uses_the_callable_with_prefix_and_seed() -> None:
    calls: list[tuple[str, int]] = []

    def counter(prefix: str, seed: int) -> int:
        calls.append((prefix, seed))
        return seed + len(calls)

    context = ExpressionContext(variables={"major": "1"}, counter=counter)
    assert evaluate("counter(variables['major'], 100)", context) == 101
    assert evaluate("counter(variables['major'], 100)", context) == 102
    assert calls == [("1", 100), ("1", 100)]


def test_or_short_circuits_before_an_error() -> None:
    assert evaluate("or(true, gt(1, 'not a number'))", ExpressionContext()) is True


def test_iif_only_evaluates_the_chosen_branch() -> None:
    assert evaluate("iif(false, gt(1, 'x'), 'no')", ExpressionContext()) == "no"


def test_named_values_are_checked_even_when_not_evaluated() -> None:
    context = ExpressionContext(allowed=frozenset({"parameters", "variables"}))
    with pytest.raises(ExpressionError, match="'dependencies' is not available here at column 10"):
        evaluate("or(true, dependencies.A.result)", context)


def test_extra_names_are_always_allowed() -> None:
    context = ExpressionContext(allowed=frozenset({"parameters"}), names={"env": "prod1"})
    assert interpolate("./deploy.sh --environment ${{ env }}", context) == "./deploy.sh --environment prod1"


def test_condition_casts_to_bool() -> None:
    context = ExpressionContext(variables={"n": "0"})
    assert evaluate_condition("variables.n", context) is True  # a non-empty string
    assert evaluate_condition("length('')", context) is False  # the number 0


def test_interpolate_leaves_non_strings_alone() -> None:
    assert interpolate(5, ExpressionContext()) == 5  # type: ignore[arg-type]


def test_naive_start_time_is_taken_as_utc() -> None:
    context = ExpressionContext(pipeline={"startTime": datetime(2024, 1, 2, 3, 4, 5)})
    expression = r"format('{0:yyyyMMdd HH\:mm K}', pipeline.startTime)"  # ':' must be escaped, as in Azure
    assert evaluate(expression, context) == "20240102 03:04 +00:00"


@pytest.mark.parametrize(
    ("text", "column"),
    [("variables" + ".b" * 10000, 108), ("not(" * 60 + "true" + ")" * 60, 201), ("variables" + "[0]" * 100, 155)],
)
def test_deep_nesting_is_limited_to_50_levels(text: str, column: int) -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate(text, ExpressionContext())
    message = str(raised.value)
    assert message.startswith(f"expression is nested more than 50 levels deep at column {column} in: ")
    assert message.endswith("...")  # the quoted expression is cut
    assert raised.value.column == column


def test_overlong_expression_is_rejected() -> None:
    with pytest.raises(ExpressionError, match=r"^expression is 21001 characters long; the maximum is 21000$"):
        parse_expression("a" * 21001)


def test_errors_from_a_parsed_node_quote_its_source() -> None:
    node = parse_expression("gt(1, variables.a)")
    assert node.source == "gt(1, variables.a)"
    with pytest.raises(ExpressionError) as raised:
        evaluate(node, ExpressionContext(variables={"a": "x"}))
    assert str(raised.value) == "gt(): cannot convert String 'x' to Number at column 1 in: gt(1, variables.a)"
