"""Table-driven tests of the expression language; the cases live in tests/data/pipelines/expressions/*.yaml.

Each case: `expression` (or `text` for interpolate/macros), an optional `context`, and `expected`
(typed value), `expected_text` (compared through to_string) or `error` (the exact message).
Every case names its Microsoft docs page in `source`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlyard.pipelines.expressions import (
    ExpressionContext,
    ExpressionError,
    evaluate,
    evaluate_condition,
    expand_macros,
    interpolate,
    is_runtime_expression,
    to_string,
)
from tests import yamldata

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines" / "expressions"
SOURCES = {"Expressions", "Conditions", "Template expressions", "Define variables", "Runtime parameters"}
MODES = {"evaluate", "condition", "interpolate", "macros", "runtime"}


def _load_cases() -> list[Any]:
    params = []
    for path in sorted(DATA.glob("*.yaml")):
        document = yamldata.read(path)
        mode = document.get("mode", "evaluate")
        for case in document["cases"]:
            case.setdefault("mode", mode)
            params.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return params


CASES = _load_cases()


def _context(raw: dict[str, Any] | None) -> ExpressionContext:
    raw = dict(raw or {})
    counters = raw.pop("counters", None)
    if "allowed" in raw:
        raw["allowed"] = frozenset(raw["allowed"])
    if counters is not None:
        state = dict(counters)

        def counter(prefix: str, seed: int) -> int:
            value = state.get(prefix, seed)
            state[prefix] = value + 1
            return int(value)

        raw["counter"] = counter
    return ExpressionContext(**raw)


def _run(case: dict[str, Any]) -> Any:
    mode = case["mode"]
    context = _context(case.get("context"))
    if mode == "evaluate":
        return evaluate(case["expression"], context)
    if mode == "condition":
        return evaluate_condition(case["expression"], context)
    if mode == "interpolate":
        return interpolate(case["text"], context)
    if mode == "runtime":
        return is_runtime_expression(case["text"])
    return expand_macros(case["text"], case.get("variables", {}))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES)
def test_case(case: dict[str, Any]) -> None:
    assert case["source"] in SOURCES, f"unknown source page {case['source']!r}"
    assert case["mode"] in MODES
    if "error" in case:
        with pytest.raises(ExpressionError) as raised:
            _run(case)
        assert str(raised.value) == case["error"]
        return
    result = _run(case)
    if "expected_text" in case:
        assert to_string(result) == case["expected_text"]
    else:
        assert "expected" in case, "a case needs expected, expected_text or error"
        assert result == case["expected"]
        assert _kind(result) == _kind(case["expected"])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
