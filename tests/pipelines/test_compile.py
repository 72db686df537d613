"""compile_pipeline: shortcuts, defaults, dependencies, steps, plan shape (docs: "Stages", "Jobs",
"Conditions", "Deployment jobs", "YAML schema reference")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, Plan, compile, compile_pipeline, load_pipeline


def plan_of(text: str, **kwargs: object) -> Plan:
    return compile_pipeline(load_pipeline(text, name="p.yml"), **kwargs)  # type: ignore[arg-type]


def test_compile_is_an_alias() -> None:
    assert compile is compile_pipeline


def test_a_file_with_only_steps_is_one_job_in_one_stage() -> None:
    plan = plan_of("pool: {vmImage: ubuntu-latest}\ntimeoutInMinutes: 5\nsteps:\n- script: echo\n")
    (stage,) = plan.stages
    (job,) = stage.jobs
    assert (stage.name, job.name, job.timeout_in_minutes) == ("__default", "Job", 5)
    assert job.pool is not None and job.pool.vm_image == "ubuntu-latest"


def test_a_file_with_only_jobs_is_one_stage_and_jobs_run_in_parallel() -> None:
    plan = plan_of("jobs:\n- job: A\n  steps: [{script: a}]\n- job: B\n  steps: [{script: b}]\n")
    assert [job.depends_on for job in plan.stages[0].jobs] == [(), ()]


def test_stages_depend_on_the_previous_stage_unless_depends_on_says_otherwise() -> None:
    text = """\
stages:
- stage: A
  jobs: [{job: J, steps: [{script: a}]}]
- stage: B
  jobs: [{job: J, steps: [{script: b}]}]
- stage: C
  dependsOn: []
  jobs: [{job: J, steps: [{script: c}]}]
- stage: D
  dependsOn: [A, C]
  jobs: [{job: J, steps: [{script: d}]}]
- stage: E
  jobs: [{job: J, steps: [{script: e}]}]
"""
    assert [s.depends_on for s in plan_of(text).stages] == [(), ("A",), (), ("A", "C"), ("D",)]


def test_default_and_custom_conditions() -> None:
    text = """\
jobs:
- job: A
  steps:
  - script: a
  - script: b
    condition: always()
- job: B
  dependsOn: A
  condition: failed()
  steps: [{script: c}]
"""
    plan = plan_of(text)
    first, second = plan.stages[0].jobs
    assert first.condition == "succeeded()"
    assert [step.condition for step in first.steps] == ["succeeded()", "always()"]
    assert (second.condition, second.depends_on) == ("failed()", ("A",))


def test_pools_are_inherited_pipeline_stage_job() -> None:
    text = """\
pool: {name: Default}
stages:
- stage: A
  pool: StagePool
  jobs:
  - job: One
    steps: [{script: a}]
  - job: Two
    pool: {vmImage: ubuntu-latest, demands: [python]}
    steps: [{script: a}]
- stage: B
  jobs: [{job: Three, steps: [{script: a}]}]
"""
    pools = [job.pool for job in plan_of(text).jobs]
    assert [(p.name, p.vm_image, p.demands) for p in pools if p] == [
        ("StagePool", None, ()),
        (None, "ubuntu-latest", ("python",)),
        ("Default", None, ()),
    ]


def test_steps_get_stable_names_and_normalised_inputs() -> None:
    text = """\
steps:
- script: echo 1
- script: echo 2
  name: CmdLine2
- script: echo 3
- bash: echo 4
  workingDirectory: src
- task: pythonscript@0
  inputs:
    scriptsource: inline
    script: print(1)
- task: DownloadPipelineArtifact@2
  inputs:
    artifactName: model
    targetPath: $(Pipeline.Workspace)/m
- checkout: none
- publish: dist
  artifact: dist
"""
    steps = plan_of(text).jobs[0].steps
    assert [s.name for s in steps] == [
        "CmdLine", "CmdLine2", "CmdLine3", "Bash", "PythonScript", "DownloadPipelineArtifact", "Checkout",
        "PublishPipelineArtifact",
    ]  # fmt: skip
    assert [s.task for s in steps][3:] == [
        "Bash@3", "PythonScript@0", "DownloadPipelineArtifact@2", None, "PublishPipelineArtifact@1",
    ]  # fmt: skip
    assert steps[3].inputs["workingDirectory"] == "src" and steps[3].script == "echo 4"
    assert steps[4].inputs["scriptSource"] == "inline" and steps[4].script == "print(1)"
    assert steps[5].inputs == {
        "buildType": "current",
        "artifact": "model",
        "patterns": "**",
        "path": "$(Pipeline.Workspace)/m",
    }
    assert steps[6].inputs == {"repository": "none"} and steps[6].display_name == "Checkout none"
    assert steps[7].inputs == {"targetPath": "dist", "artifact": "dist", "publishLocation": "pipeline"}


def test_step_fields() -> None:
    text = """\
steps:
- script: run
  displayName: Run it
  env: {A: 1, B: true}
  continueOnError: true
  timeoutInMinutes: 7
  enabled: false
  retryCountOnTaskFailure: 2
"""
    step = plan_of(text).jobs[0].steps[0]
    assert (step.display_name, dict(step.env)) == ("Run it", {"A": "1", "B": "true"})
    assert (step.continue_on_error, step.timeout_in_minutes, step.enabled, step.retry_count_on_task_failure) == (
        True, 7, False, 2,
    )  # fmt: skip


def test_deployment_job() -> None:
    text = """\
jobs:
- deployment: Deploy
  environment: prod.web01
  workspace: {clean: all}
  strategy:
    runOnce:
      deploy:
        pool: {name: Deployers}
        steps:
        - download: current
          artifact: model
        - download: none
        - script: ./deploy.sh
"""
    job = plan_of(text).jobs[0]
    assert (job.kind, job.strategy, job.workspace_clean) == ("deployment", "runOnce", "all")
    assert job.environment is not None and (job.environment.name, job.environment.resource_name) == ("prod", "web01")
    assert job.pool is not None and job.pool.name == "Deployers"
    assert [step.kind for step in job.steps] == ["download", "script"]


def test_runtime_expressions_and_macros_are_kept_for_the_runner() -> None:
    text = """\
variables:
  a: $[ variables.b ]
  b: $(c)
steps:
- script: echo $(a) $[ variables.b ]
  condition: eq(variables['a'], '$(b)')
"""
    plan = plan_of(text)
    assert [(v.name, v.value) for v in plan.variables] == [("a", "$[ variables.b ]"), ("b", "$(c)")]  # type: ignore[union-attr]
    step = plan.jobs[0].steps[0]
    assert step.script == "echo $(a) $[ variables.b ]"
    assert step.condition == "eq(variables['a'], '$(b)')"


def test_plan_is_frozen_and_serialisable() -> None:
    plan = plan_of("name: run-$(Rev:r)\nsteps:\n- script: echo\n", parameters={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages[0].jobs[0].steps[0].name = "x"  # type: ignore[misc]
    document = json.loads(json.dumps(plan.to_dict()))
    assert document["runName"] == "run-$(Rev:r)"
    assert document["stages"][0]["jobs"][0]["steps"][0]["task"] == "CmdLine@2"
    assert plan.stage("__default").jobs[0].name == "Job"


def test_template_nesting_deeper_than_50_is_an_error(tmp_path: Path) -> None:
    for level in range(60):
        (tmp_path / f"t{level}.yml").write_text(f"steps:\n- template: t{level + 1}.yml\n", encoding="utf-8")
    main = tmp_path / "main.yml"
    main.write_text("steps:\n- template: t0.yml\n", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        compile_pipeline(load_pipeline(main), repo_root=tmp_path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.file == "t49.yml"
    assert diagnostic.message.startswith("templates nested deeper than 50 levels: main.yml -> t0.yml -> t1.yml")
    assert diagnostic.message.endswith("t48.yml -> t49.yml -> t50.yml")


def test_each_compile_reads_templates_again(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("steps:\n- script: one\n", encoding="utf-8")
    (tmp_path / "main.yml").write_text("steps:\n- template: t.yml\n", encoding="utf-8")
    pipeline = load_pipeline(tmp_path / "main.yml")
    assert compile_pipeline(pipeline, repo_root=tmp_path).jobs[0].steps[0].script == "one"
    (tmp_path / "t.yml").write_text("steps:\n- script: two\n", encoding="utf-8")
    assert compile_pipeline(pipeline, repo_root=tmp_path).jobs[0].steps[0].script == "two"
