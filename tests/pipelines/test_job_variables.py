"""Job variable resolution (pipelines/job_variables.py), table-driven and in-process: scopes in order,
last definition wins (case-insensitive, plain or secret), groups, runtime expressions, read-only names."""

from __future__ import annotations

from typing import Any

import pytest

from mlyard.pipelines.expressions import ExpressionContext
from mlyard.pipelines.job_variables import GroupValues, resolve_job_variables
from mlyard.pipelines.model import Variable, VariableGroup

GROUPS = {"prod": GroupValues({"URL": "https://prod"}, {"TOKEN": "t0k3n"})}
CONTEXT = ExpressionContext(
    variables={"Build.SourceBranch": "refs/heads/main"},
    dependencies={"Build": {"result": "Succeeded", "outputs": {"set.version": "1.2"}}},
)

V = Variable


def case(name: str, scopes: list[list[Any]], expect: tuple[Any, ...], **given: dict[str, str]) -> Any:
    return pytest.param(scopes, given, expect, id=name)


CASES = [
    case("pipeline and queue-time variables pass through", [], ({"a": "1"}, {"pw": "x"}, ()),
         plain={"a": "1"}, secret={"pw": "x"}),
    case("a secret wins over a plain value of the same name", [], ({}, {"pw": "x"}, ()),
         plain={"PW": "plain"}, secret={"pw": "x"}),
    case("job scope overrides stage and root", [[V("v", "root")], [V("v", "stage")], [V("v", "job")]],
         ({"v": "job"}, {}, ())),
    case("a YAML variable replaces a secret of the same name (any case)", [[V("DB", "plain")]],
         ({"DB": "plain"}, {}, ()), secret={"Db": "s3cret"}),
    case("a group adds plain and secret values", [[VariableGroup("prod")]],
         ({"URL": "https://prod"}, {"TOKEN": "t0k3n"}, ())),
    case("a group's secret replaces an earlier plain value", [[V("token", "p"), VariableGroup("prod")]],
         ({"URL": "https://prod"}, {"TOKEN": "t0k3n"}, ())),
    case("a later plain value replaces a group's secret", [[VariableGroup("prod")], [V("TOKEN", "p")]],
         ({"URL": "https://prod", "TOKEN": "p"}, {}, ())),
    case("runtime expressions read dependencies", [[V("v", "$[ dependencies.Build.outputs['set.version'] ]")]],
         ({"v": "1.2"}, {}, ())),
    case("runtime expressions read variables", [[V("b", " $[ variables['Build.SourceBranch'] ] ")]],
         ({"b": "refs/heads/main"}, {}, ())),
    case("a failing runtime expression is an error value", [[V("bad", "$[eq(1]")]],
         ({"bad": "<error: expected ')' at column 5 in: eq(1>"}, {}, ())),
    case("read-only names are kept once", [[V("r", "1", readonly=True)], [V("r", "2", readonly=True)]],
         ({"r": "2"}, {}, ("r",))),
    case("macros stay for the agent", [[V("m", "$(other)-x")]], ({"m": "$(other)-x"}, {}, ())),
]  # fmt: skip


@pytest.mark.parametrize(("scopes", "given", "expect"), CASES)
def test_resolve_job_variables(scopes: list[list[Any]], given: dict[str, dict[str, str]], expect: tuple[Any]) -> None:
    plain, secret = given.get("plain", {}), given.get("secret", {})
    resolved = resolve_job_variables(scopes, plain=plain, secret=secret, groups=GROUPS, context=CONTEXT)
    assert (resolved.plain, resolved.secret, resolved.readonly) == expect
