"""Microsoft's documented trigger, expression and variable examples (issue 11): each folder of
tests/data/pipelines/mslearn/ holds one example as the page shows it (its URL at the top of every file)
and an ``expect.yaml`` with what the page says about it:

- ``decisions``: pushes (``ref``, ``changed`` paths, commit ``message``) and whether they run the pipeline;
- ``scripts``: the scripts of the compiled steps, in order; ``plan``: values at paths of ``plan.to_dict()``;
- ``context``: the predefined variables known at compile time (``Build.SourceBranch``...);
- ``warnings``: the warnings of loading it;
- ``unknown_tasks``: tasks outside mlyard's task list (or made up by the example): the only problems
  allowed; the plan checks apply once mlyard knows them;
- ``known_issue``: a difference from Azure that mlyard still has (the test is expected to fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlyard.pipelines import Pipeline, PipelineError, Variable, compile_pipeline, load_pipeline, trigger_decision
from tests import yamldata
from tests.pipelines.conftest import DATA, lookup

EXAMPLES = DATA / "mslearn"
FOLDERS = sorted(path.parent for path in EXAMPLES.glob("*/expect.yaml"))


def test_every_example_names_its_page() -> None:
    assert len(FOLDERS) >= 40
    for folder in FOLDERS:
        for file in folder.glob("*.y*ml"):
            first = file.read_text(encoding="utf-8").splitlines()[0]
            assert first.startswith("# Source: https://learn.microsoft.com/"), file


def _expect(folder: Path) -> dict[str, Any]:
    return yamldata.read(folder / "expect.yaml")  # type: ignore[no-any-return]


def _case(folder: Path) -> Any:
    issue = _expect(folder).get("known_issue")
    marks = [pytest.mark.xfail(reason=issue, strict=False)] if issue else []
    return pytest.param(folder, marks=marks, id=folder.name)


@pytest.mark.parametrize("folder", [_case(folder) for folder in FOLDERS])
def test_example(folder: Path) -> None:
    expect = _expect(folder)
    unknown = [name.lower() for name in expect.get("unknown_tasks", [])]
    try:
        pipeline = load_pipeline(folder / expect.get("pipeline", "azure-pipelines.yml"))
        _check_triggers(pipeline, expect)
        plan = compile_pipeline(pipeline, context=expect.get("context"), repo_root=folder)
    except PipelineError as exc:
        problems = [d.message for d in exc.diagnostics]
        # the docs' examples use made-up tasks, and real ones with made-up inputs (VSTest@2 `solution`)
        allowed = [
            p for p in problems
            if any(f"unknown task '{name}'" in p.lower() or f" for task {name}" in p.lower() for name in unknown)
        ]  # fmt: skip
        assert unknown and problems == allowed, problems
        return
    document = plan.to_dict()
    steps = [step for stage in document["stages"] for job in stage["jobs"] for step in job["steps"]]
    if "scripts" in expect:
        scripts = [step["inputs"]["script"] for step in steps if "script" in step.get("inputs", {})]
        assert scripts == expect["scripts"]
    for path, value in expect.get("plan", {}).items():
        assert lookup(document, path) == value, path


def _check_triggers(pipeline: Pipeline, expect: dict[str, Any]) -> None:
    assert list(pipeline.warnings) == expect.get("warnings", [])
    for push in expect.get("decisions", []):
        decision = trigger_decision(pipeline, push["ref"], push.get("changed"), push.get("message", ""))
        assert decision.run is push["run"], (push, decision.reason)


def test_insert_of_an_expression_validates(tmp_path: Path) -> None:
    """`${{ insert }}: ${{ parameters.additionalVariables }}` (Template expressions, Insertion) was
    rejected as written: "the body of a template directive must be a mapping here"."""
    example = EXAMPLES / "template-expressions-insert-mapping"
    (tmp_path / "jobs").mkdir()
    template = (example / "jobs/build.yml").read_text(encoding="utf-8")
    template = template.replace("- task: msbuild@1", "- script: build").replace("- task: vstest@2", "- script: test")
    (tmp_path / "jobs/build.yml").write_text(template, encoding="utf-8")
    (tmp_path / "azure-pipelines.yml").write_text((example / "azure-pipelines.yml").read_text(encoding="utf-8"))
    plan = compile_pipeline(load_pipeline(tmp_path / "azure-pipelines.yml"), repo_root=tmp_path)
    variables = plan.stages[0].jobs[0].variables
    assert [(v.name, v.value) for v in variables if isinstance(v, Variable)] == [
        ("configuration", "debug"), ("arch", "x86"), ("TEST_SUITE", "L0,L1"),
    ]  # fmt: skip


def test_a_variable_sees_the_variables_defined_before_it_in_its_block() -> None:
    """"Expressions": `compileVar: ${{ variables.staticVar }}` outputs `my value` (it was empty)."""
    text = """\
variables:
  later: ${{ variables.first }}-${{ variables.third }}
  first: one
  second: ${{ variables.first }}-two
  third: ${{ variables.second }}-three
steps:
- script: echo ${{ variables.third }}
"""
    plan = compile_pipeline(load_pipeline(text, name="vars.yml"))
    values = {v.name: v.value for v in plan.variables if isinstance(v, Variable)}
    assert values == {"later": "-", "first": "one", "second": "one-two", "third": "one-two-three"}
    assert plan.stages[0].jobs[0].steps[0].script == "echo one-two-three"
