"""Runtime parameters: declarations, conversion of CLI strings, type and `values` checks ("Runtime parameters")."""

from __future__ import annotations

import pytest

from mlyard.pipelines import Parameter, PipelineError, load_pipeline, resolve_parameters
from mlyard.pipelines.parameters import coerce

DECLARATIONS = """\
parameters:
- name: image
  displayName: Pool Image
  type: string
  default: ubuntu-latest
  values: [windows-latest, ubuntu-latest]
- name: count
  type: number
  default: 2
- name: test
  type: boolean
  default: true
- name: config
  type: object
  default: {a: 1}
- name: steps
  type: stepList
  default: []
steps:
- script: echo
"""


def test_defaults_and_declarations() -> None:
    pipeline = load_pipeline(DECLARATIONS)
    assert [(p.name, p.type, p.has_default) for p in pipeline.parameters] == [
        ("image", "string", True),
        ("count", "number", True),
        ("test", "boolean", True),
        ("config", "object", True),
        ("steps", "stepList", True),
    ]
    assert pipeline.parameters[0].display_name == "Pool Image"
    assert pipeline.parameters[0].values == ("windows-latest", "ubuntu-latest")
    assert resolve_parameters(pipeline, {}) == {
        "image": "ubuntu-latest", "count": 2, "test": True, "config": {"a": 1}, "steps": [],
    }  # fmt: skip


def test_cli_strings_are_converted() -> None:
    given = {"count": "3.5", "test": "FALSE", "config": "{b: [1, 2]}", "steps": "[{script: echo hi}]"}
    values = resolve_parameters(load_pipeline(DECLARATIONS), given)
    assert (values["count"], values["test"], values["config"]) == (3.5, False, {"b": [1, 2]})
    assert values["steps"] == [{"script": "echo hi"}]


def test_all_problems_are_reported_together() -> None:
    given = {"image": "beos", "count": "x", "test": "1", "steps": "not a list", "extra": "1"}
    with pytest.raises(PipelineError) as caught:
        resolve_parameters(load_pipeline(DECLARATIONS, name="p.yml"), given)
    assert caught.value.errors == [
        "p.yml:1:1: parameters: unexpected parameter 'extra'; declared parameters: config, count, image, steps, test",
        "p.yml:2:3: parameters: parameter 'image': value 'beos' is not allowed; "
        "allowed values: windows-latest, ubuntu-latest",
        "p.yml:7:3: parameters: parameter 'count': expected a number, got 'x'",
        "p.yml:10:3: parameters: parameter 'test': expected a boolean (true or false), got '1'",
        "p.yml:16:3: parameters: parameter 'steps': expected a list of steps, got 'not a list'",
    ]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("string", 3, ("3", None)),
        ("string", True, ("true", None)),
        ("string", [1], ([1], "parameter 'p': expected a string, got a list")),
        ("number", "07", (7, None)),
        ("number", True, (True, "parameter 'p': expected a number, got 'True'")),
        ("boolean", "True", (True, None)),
        ("step", {"script": "a"}, ({"script": "a"}, None)),
        ("step", "a", ("a", "parameter 'p': expected a step (a mapping), got 'a'")),
        ("jobList", [{"job": "A"}], ([{"job": "A"}], None)),
        ("jobList", None, ([], None)),
        ("stageList", [1], ([1], "parameter 'p': expected a list of stages, got a list")),
        ("deployment", {"deployment": "D"}, ({"deployment": "D"}, None)),
        ("object", None, (None, None)),
    ],
)
def test_coerce(kind: str, value: object, expected: tuple[object, str | None]) -> None:
    assert coerce(Parameter("p", kind), value) == expected


def test_values_compare_numbers_and_strings() -> None:
    parameter = Parameter("n", "number", values=(1, 2))
    assert coerce(parameter, "2") == (2, None)
    assert coerce(parameter, "3") == ("3", "parameter 'n': value '3' is not allowed; allowed values: 1, 2")
