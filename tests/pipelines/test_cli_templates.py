"""`mlyard pipelines validate` on template files (--template, or detected) and `explain-trigger` on
files with problems outside their trigger (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlyard.cli.main import app
from mlyard.pipelines import PipelineError
from mlyard.pipelines.parser import load_trigger
from mlyard.pipelines.template_check import check_template, looks_like_template
from tests.pipelines.conftest import write_tree

runner = CliRunner()

TEMPLATES = {
    ".git/HEAD": "ref: refs/heads/main\n",
    "eng/steps.yml": """\
parameters:
- name: name
  default: world
- name: extra
  type: stepList
  default: []
steps:
- script: echo hello ${{ parameters.name }}
- ${{ if eq(parameters.name, 'world') }}:
  - bash: echo default
- ${{ parameters.extra }}
""",
    "eng/jobs.yml": """\
parameters:
  pool: ubuntu-latest
jobs:
- job: Deploy
  dependsOn: Build          # a job of the pipeline that uses the template
  pool: {vmImage: '${{ parameters.pool }}'}
  steps:
  - template: steps.yml
    parameters: {name: deploy}
""",
    "eng/stages.yml": """\
parameters:
- name: environments
  type: object
  default: [dev, prod]
stages:
- ${{ each environment in parameters.environments }}:
  - stage: Deploy_${{ environment }}
    jobs:
    - template: jobs.yml
""",
    "eng/variables.yml": "variables:\n  configuration: release\n  tag: ${{ variables.configuration }}\n",
    "eng/required.yml": "parameters:\n- name: image\nsteps:\n- script: docker build -t ${{ parameters.image }} .\n",
    "eng/bad.yml": """\
parameters:
- name: flag
  type: boolean
  default: true
steps:
- ${{ if parameters.flag }}:
  - script: echo
    timeoutInMinutes: soon
""",
    "eng/expands-badly.yml": """\
parameters:
- name: kind
  default: scirpt
steps:
- ${{ parameters.kind }}: echo
""",
    "eng/not-a-template.yml": "parameters: []\ntrigger: none\nsteps:\n- script: echo\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_tree(tmp_path, TEMPLATES)
    return tmp_path


def validate(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["pipelines", "validate", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_template_mode_validates_each_kind_of_template(repo: Path) -> None:
    names = ["steps", "jobs", "stages", "variables"]
    code, document = validate("--template", *(str(repo / f"eng/{name}.yml") for name in names))
    assert code == 0, document
    assert [(report["kind"], report["valid"]) for report in document["files"]] == [
        ("step template", True), ("job template", True), ("stage template", True), ("variable template", True),
    ]  # fmt: skip


def test_a_file_that_fails_as_a_pipeline_but_has_only_template_sections_is_checked_as_a_template(
    repo: Path,
) -> None:
    names = ["steps", "jobs", "variables"]
    code, document = validate(*(str(repo / f"eng/{name}.yml") for name in names))
    assert code == 0, document
    # a steps file with parameters that all have defaults is a valid pipeline too: it stays one
    assert [report["kind"] for report in document["files"]] == ["pipeline", "job template", "variable template"]


def test_text_output_names_the_kind_of_template(repo: Path) -> None:
    result = runner.invoke(app, ["pipelines", "validate", str(repo / "eng/jobs.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{repo / 'eng/jobs.yml'}: valid (job template)\n"


def test_as_a_pipeline_a_template_is_rejected(repo: Path) -> None:
    code, document = validate("--pipeline", str(repo / "eng/jobs.yml"), str(repo / "eng/variables.yml"))
    assert code == 1
    messages = [error["message"] for report in document["files"] for error in report["errors"]]
    assert messages == [
        "job 'Deploy' depends on unknown job 'Build'; jobs: Deploy",
        "a pipeline needs one of the keys stages, jobs, steps or extends",
    ]


def test_template_without_defaults_is_checked_as_written_with_a_warning(repo: Path) -> None:
    code, document = validate("--template", str(repo / "eng/required.yml"))
    assert code == 0
    assert document["files"][0]["warnings"] == ["template not expanded: parameters without a default (image)"]


def test_template_problems_as_written_and_after_expansion(repo: Path) -> None:
    code, document = validate("--template", str(repo / "eng/bad.yml"), str(repo / "eng/expands-badly.yml"))
    assert code == 1
    bad, expanded = (report["errors"] for report in document["files"])
    assert [(e["line"], e["column"], e["path"], e["message"]) for e in bad] == [
        (8, 5, "steps[0].timeoutInMinutes", "expected a whole number, got 'soon'"),
    ]
    assert [(Path(e["file"]).name, e["path"], e["message"].split(";")[0]) for e in expanded] == [
        ("expands-badly.yml", "steps[0].scirpt", "unknown key 'scirpt'"),
    ]


def test_forcing_template_mode_on_a_file_with_pipeline_keys_names_them(repo: Path) -> None:
    code, document = validate("--template", str(repo / "eng/not-a-template.yml"))
    assert code == 1
    assert [e["message"] for e in document["files"][0]["errors"]] == [
        "'trigger' is not a template key: a template has parameters and steps, jobs, stages or variables"
    ]
    assert not looks_like_template({"parameters": [], "trigger": "none", "steps": []})
    assert looks_like_template({"variables": {"a": "1"}}) and not looks_like_template({"steps": []})


def test_check_template_library_call(repo: Path) -> None:
    assert check_template(repo / "eng/stages.yml").kind == "stages"
    with pytest.raises(PipelineError, match="a template needs one of the keys steps, jobs, stages or variables"):
        check_template(_write(repo / "eng/empty.yml", "parameters: []\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BROKEN_ELSEWHERE = """\
trigger:
  branches:
    include: [main, 'releases/*']
  paths:
    exclude: [docs]
pr: none
resources:
  repositories: [{repository: tools, type: git, name: tools}]
steps:
- template: missing.yml@tools
- scirpt: a typo
"""


def test_explain_trigger_reads_only_the_trigger(tmp_path: Path) -> None:
    file = _write(tmp_path / "ci.yml", BROKEN_ELSEWHERE)
    assert runner.invoke(app, ["pipelines", "validate", str(file)]).exit_code == 1
    cases = [
        (["--ref", "refs/heads/releases/1.0", "--changed", "src/app.py"], True),
        (["--ref", "refs/heads/main", "--changed", "docs/index.md"], False),
        (["--ref", "refs/heads/feature/x"], False),
    ]
    for args, run in cases:
        result = runner.invoke(app, ["pipelines", "explain-trigger", str(file), *args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["run"] is run, args


def test_explain_trigger_still_reports_problems_in_the_trigger(tmp_path: Path) -> None:
    file = _write(tmp_path / "ci.yml", "trigger:\n  branches: [main]\nsteps: [{scirpt: x}]\n")
    with pytest.raises(PipelineError) as caught:
        load_trigger(file)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{file}:2:3: trigger.branches: expected a mapping with include and/or exclude, got a list"
    ]
    with pytest.raises(PipelineError, match="a pipeline must be a mapping, got a list"):
        load_trigger("- a\n", name="list.yml")
