"""Loading YAML with positions (source.py) and the load_pipeline entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, load_pipeline, trigger_decision
from mlyard.pipelines.parser import PR_WARNING
from mlyard.pipelines.source import YList, YMap, load_source, mark_at

TEXT = """\
name: demo
steps:
- script: echo "a"
  env:
    FLAG: true
    COUNT: 3
    QUOTED: 'true'
    WORD: yes
    EMPTY:
    SEXAGESIMAL: 1:30
"""


def test_positions_are_one_based_and_follow_key_paths() -> None:
    document = load_source(TEXT, "demo.yml")
    assert document.position(()) == (1, 1)
    assert document.position(("steps",)) == (2, 1)
    assert document.position(("steps", 0)) == (3, 3)
    assert document.position(("steps", 0, "env", "COUNT")) == (6, 5)
    assert document.position(("steps", 0, "missing")) == (3, 3)
    mark = mark_at(document.tree, ("steps", 0, "script"))
    assert (mark.file, mark.line, mark.column) == ("demo.yml", 3, 3)


def test_containers_are_plain_dicts_and_lists() -> None:
    tree = load_source(TEXT, "demo.yml").tree
    assert isinstance(tree, YMap) and isinstance(tree, dict)
    assert isinstance(tree["steps"], YList) and isinstance(tree["steps"], list)
    assert tree["steps"][0]["script"] == 'echo "a"'


def test_scalars_follow_azure_typing() -> None:
    env = load_source(TEXT, "demo.yml").tree["steps"][0]["env"]
    assert env == {
        "FLAG": True,
        "COUNT": 3,
        "QUOTED": "true",
        "WORD": "yes",
        "EMPTY": None,
        "SEXAGESIMAL": "1:30",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "x.yml:2:1: duplicate key 'a' (first defined on line 1)"),
        ("a: [1\n", "x.yml:2:1: invalid YAML: while parsing a flow sequence did not find expected ',' or ']'"),
        ("a: &x 1\nb: *x\n", "x.yml:2:4: YAML aliases (*name) are not supported"),
        ("<<: {a: 1}\n", "x.yml:1:1: YAML merge keys (<<) are not supported"),
        ("? [a]\n: 1\n", "x.yml:1:3: a mapping key must be a plain value"),
    ],
)
def test_yaml_problems_are_diagnostics(text: str, expected: str) -> None:
    with pytest.raises(PipelineError) as caught:
        load_source(text, "x.yml")
    assert caught.value.errors == [expected]


def test_load_pipeline_from_text_and_path(tmp_path: Path) -> None:
    file = tmp_path / "ci.yml"
    file.write_text("steps:\n- script: echo\n", encoding="utf-8")
    assert load_pipeline(file).name == "ci"
    assert load_pipeline(file).file == str(file)
    from_text = load_pipeline("steps:\n- script: echo\n", name="inline")
    assert (from_text.name, from_text.file) == ("inline", "inline")
    assert load_pipeline("steps: []\n").file == "<pipeline>"


def test_text_naming_a_file_is_yaml_text_not_a_path(tmp_path: Path) -> None:
    """YAML is data, never a path: a one-line text naming a file is parsed as YAML, the file is not read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("steps:\n- script: echo SECRET-MARKER-41d7\n", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_pipeline(str(secret), name="p.yml")
    assert "SECRET-MARKER-41d7" not in str(caught.value)
    assert caught.value.diagnostics[0].file == "p.yml"


def test_every_problem_is_reported_at_once() -> None:
    text = "stages:\n- stage: A\n  jobz: []\n  jobs:\n  - job: B\n    stepz: []\n"
    with pytest.raises(PipelineError) as caught:
        load_pipeline(text, name="p.yml")
    assert [(d.line, d.column) for d in caught.value.diagnostics] == [(3, 3), (6, 5)]
    assert caught.value.message == "2 problems in pipeline p.yml"
    assert caught.value.exit_code == 1


def test_pr_is_accepted_with_a_warning() -> None:
    pipeline = load_pipeline("pr:\n- main\nsteps:\n- script: echo\n")
    assert pipeline.warnings == (PR_WARNING,)
    assert load_pipeline("steps:\n- script: echo\n").warnings == ()


def test_trigger_problems_name_their_position() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline("trigger:\n  branches:\n    include: main2\n    exclud: [x]\nsteps:\n- script: echo\n")
    assert all(d.path.startswith("trigger.branches") for d in caught.value.diagnostics)
    assert [(d.line, d.column) for d in caught.value.diagnostics][-1] == (4, 5)


def test_trigger_decision_wraps_the_pipeline_trigger() -> None:
    pipeline = load_pipeline("trigger:\n  branches:\n    include: [main]\nsteps:\n- script: echo\n")
    assert trigger_decision(pipeline, "refs/heads/main", ["a.py"], "change").run is True
    assert trigger_decision(pipeline, "refs/heads/dev", ["a.py"], "change").run is False
    assert trigger_decision(load_pipeline("steps: [{script: a}]\n"), "refs/heads/any").run is True
    assert trigger_decision(load_pipeline("trigger: none\nsteps: [{script: a}]\n"), "main").run is False
