"""Issue 11 "Azure Pipelines fidelity": the language bugs, each a minimal pipeline that failed before."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, Plan, compile_pipeline, load_pipeline
from tests.pipelines.conftest import summary, write_tree


def plan_of(text: str) -> Plan:
    return compile_pipeline(load_pipeline(text, name="p.yml"))


def plan_of_tree(root: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Plan:
    write_tree(root, files)
    monkeypatch.chdir(root)
    return compile_pipeline(load_pipeline(Path("main.yml")), repo_root=root)


def problems_of_tree(root: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every diagnostic of loading and compiling main.yml, as `mlyard pipelines validate` prints them."""
    with pytest.raises(PipelineError) as caught:
        plan_of_tree(root, files, monkeypatch)
    return [str(d) for d in caught.value.diagnostics]


# 1. a `template:` step inside a stepList parameter, inserted with `${{ each }}` ---------------------------
WRAPPER = """\
parameters:
- name: extra
  type: stepList
  default: []
steps:
- script: echo first
- ${{ each step in parameters.extra }}:
  - ${{ step }}
- ${{ parameters.extra }}
"""


def test_template_steps_inside_a_step_list_parameter_are_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "main.yml": "steps:\n- template: wrap.yml\n  parameters:\n    extra:\n    - template: inner.yml\n"
        "    - script: echo b\n",
        "wrap.yml": WRAPPER,
        "inner.yml": "steps:\n- script: echo inner\n",
    }
    plan = plan_of_tree(tmp_path, files, monkeypatch)
    assert summary(plan) == ["echo first", "echo inner", "echo b", "echo inner", "echo b"]


def test_templates_in_a_typed_list_parameter_are_relative_to_the_file_giving_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "main.yml": "jobs:\n- template: templates/job.yml\n  parameters:\n    build:\n"
        "    - template: steps/inner.yml\n",
        "templates/job.yml": "parameters:\n- name: build\n  type: stepList\njobs:\n- job: A\n  steps:\n"
        "  - ${{ each step in parameters.build }}:\n    - ${{ step }}\n",
        "steps/inner.yml": "steps:\n- script: echo inner\n",
    }
    assert summary(plan_of_tree(tmp_path, files, monkeypatch)) == ["echo inner"]


# 2. templates without a `parameters:` section, or with the old mapping form, accept any parameter ---------
def test_templates_without_typed_declarations_accept_any_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "main.yml": "steps:\n- template: bare.yml\n  parameters: {who: world}\n"
        "- template: forward.yml\n  parameters: {who: you, extra: x}\n",
        "bare.yml": "steps:\n- script: echo hello ${{ parameters.who }}\n",
        "forward.yml": """\
parameters:
  who: nobody
steps:
- template: bare.yml
  parameters:
    ${{ each parameter in parameters }}:
      ${{ parameter.key }}: ${{ parameter.value }}
- script: echo ${{ parameters.extra }}
""",
    }
    assert summary(plan_of_tree(tmp_path, files, monkeypatch)) == ["echo hello world", "echo hello you", "echo x"]


# 3. untyped template parameters are strings --------------------------------------------------------------
def test_untyped_template_parameters_are_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check = """\
- ${{ if eq(parameters.flag, '') }}:
  - script: empty
- ${{ if eq(parameters.flag, 'false') }}:
  - script: flag ${{ parameters.flag }} count ${{ parameters.count }} list ${{ join(',', parameters.list) }}
"""
    files = {
        "main.yml": "steps:\n- template: legacy.yml\n  parameters: {flag: false, list: [a, b]}\n"
        "- template: declared.yml\n  parameters: {flag: false, count: 1}\n",
        "legacy.yml": "parameters:\n  flag: true\n  count: 2\n  list: []\nsteps:\n" + check,
        "declared.yml": "parameters:\n- name: flag\n- name: count\n- name: list\n  type: object\n"
        "  default: [c]\nsteps:\n" + check,
    }
    assert summary(plan_of_tree(tmp_path, files, monkeypatch)) == [
        "flag false count 2 list a,b",
        "flag false count 1 list c",
    ]


# 4. booleans written in YAML read true/false as strings (not Python's True/False) --------------------------
def test_boolean_variables_read_true_and_false() -> None:
    text = """\
variables:
  flag: true
  off: false
steps:
- script: terraform apply -var "x=$(flag)" -var "y=${{ variables.off }}" -var "z=${{ variables.flag }}"
  env: {FLAG: true}
"""
    plan = plan_of(text)
    assert [(v.name, v.value) for v in plan.variables] == [("flag", "true"), ("off", "false")]  # type: ignore[union-attr]
    (step,) = plan.jobs[0].steps
    assert step.inputs["script"] == 'terraform apply -var "x=$(flag)" -var "y=false" -var "z=true"'
    assert step.env == {"FLAG": "true"}


# 5. a branch never taken is not validated structurally, only its expressions ----------------------------
def test_a_branch_never_taken_is_not_validated_structurally() -> None:
    text = """\
parameters:
- name: docker
  type: boolean
  default: false
jobs:
- job: Build
  ${{ if parameters.docker }}:
    container: python:3.12
  steps:
  - ${{ if parameters.docker }}:
    - powershell: Write-Host docker
  - ${{ else }}:
    - script: echo native
"""
    plan = plan_of(text)
    assert summary(plan) == ["echo native"]


def test_what_the_expansion_produces_is_validated_at_its_line() -> None:
    text = "steps:\n- ${{ if true }}:\n  - scirpt: echo\n"
    with pytest.raises(PipelineError) as caught:
        plan_of(text)
    assert caught.value.errors == [
        "p.yml:3:5: steps[0].scirpt: unknown key 'scirpt'; supported step kinds: bash, checkout, download, "
        "powershell, publish, pwsh, script, task, template"
    ]


def test_expressions_of_a_branch_never_taken_must_still_parse() -> None:
    text = "steps:\n- ${{ if false }}:\n  - script: echo ${{ eq(1, }}\n  - ${{ if eq(1 }}:\n    - script: b\n"
    with pytest.raises(PipelineError) as caught:
        load_pipeline(text, name="p.yml")
    assert caught.value.errors == [
        "p.yml:3:5: steps[0].${{ if false }}[0].script: invalid expression in 'echo ${{ eq(1, }}': "
        "expected a value at column 6 in: eq(1,",
        "p.yml:4:5: steps[0].${{ if false }}[1].${{ if eq(1 }}: invalid expression 'eq(1': "
        "expected ')' at column 5 in: eq(1",
    ]


# 6. `${{ if }}` and `${{ each }}` inside a dependsOn list ------------------------------------------------
def test_template_directives_inside_depends_on() -> None:
    text = """\
parameters:
- name: after
  type: object
  default: [A]
jobs:
- job: A
  steps: [{script: a}]
- job: B
  steps: [{script: b}]
- job: C
  dependsOn:
  - ${{ if true }}:
    - B
  - ${{ if false }}:
    - Missing
  - ${{ each name in parameters.after }}:
    - ${{ name }}
  steps: [{script: c}]
"""
    (stage,) = plan_of(text).stages
    assert stage.jobs[2].depends_on == ("B", "A")


# 8. pools take the extra keys Microsoft's schema allows (1ES pools: image, os) -----------------------------
def test_pool_accepts_extra_keys() -> None:
    text = "pool:\n  name: P\n  image: ubuntu-2204\n  os: linux\nsteps:\n- script: echo\n"
    (job,) = plan_of(text).jobs
    assert job.pool is not None and job.pool.name == "P"


# 11. `upload` is the old name of `publish` -----------------------------------------------------------------
def test_upload_is_read_as_publish() -> None:
    (job,) = plan_of("steps:\n- upload: dist\n  artifact: wheel\n").jobs
    (step,) = job.steps
    assert (step.kind, step.task, step.inputs["targetPath"], step.inputs["artifact"]) == (
        "publish", "PublishPipelineArtifact@1", "dist", "wheel",
    )  # fmt: skip


# 12. one run reports the problems of every pass ------------------------------------------------------------
def test_problems_as_written_and_after_expansion_are_reported_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "main.yml": "steps:\n- scirpt: echo\n- template: missing.yml\n- ${{ if true }}:\n  - bahs: echo\n",
    }
    assert problems_of_tree(tmp_path, files, monkeypatch) == [
        "main.yml:2:3: steps[0].scirpt: unknown key 'scirpt'; supported step kinds: bash, checkout, download, "
        "powershell, publish, pwsh, script, task, template",
        "main.yml:3:3: steps[1].template: template file 'missing.yml' not found",
        "main.yml:5:5: steps[1].bahs: unknown key 'bahs'; supported step kinds: bash, checkout, download, "
        "powershell, publish, pwsh, script, task, template",
    ]


def test_a_step_of_an_unsupported_kind_is_one_problem_not_one_per_key() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline("steps:\n- getPackage: feed/pkg\n  path: out\n  displayName: Get\n", name="p.yml")
    (problem,) = caught.value.errors
    assert problem.startswith("p.yml:2:3: steps[0].getPackage: 'getPackage' is not supported by mlyard")


def test_dependency_problems_are_reported_with_structural_ones() -> None:
    text = """\
stages:
- stage: Build
  jobs:
  - job: Compile
    steps:
    - scirpt: make
  - job: Test
    dependsOn: Compyle
    timeoutInMinutes: soon
    steps:
    - script: test
"""
    with pytest.raises(PipelineError) as caught:
        load_pipeline(text, name="ci.yml", repo_root=".")
    assert [error.split(";")[0] for error in caught.value.errors] == [
        "ci.yml:6:7: stages[0].jobs[0].steps[0].scirpt: unknown key 'scirpt'",
        "ci.yml:8:5: stages[0].jobs[1].dependsOn: job 'Test' depends on unknown job 'Compyle' in stage 'Build'",
        "ci.yml:9:5: stages[0].jobs[1].timeoutInMinutes: expected a whole number, got 'soon'",
    ]
