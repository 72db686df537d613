"""The plan as a run stores it (services/plan_store.py), read back typed: both the Plan.to_dict() form and
the snake_case form runs stored so far; one job at a time for a claim; the protected resources it uses."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlyard.ci import plan_store
from mlyard.pipelines import Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.model import Environment, Job
from tests.ci.legacy_plan import plan_doc

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines" / "valid"
SAMPLES = sorted(DATA.glob("*.yml"))
RESOURCES = """trigger: none
variables:
- group: shared
stages:
- stage: Deploy
  variables:
  - group: stage-group
  jobs:
  - deployment: ship
    environment: prod.web
    strategy:
      runOnce:
        deploy:
          steps:
          - task: AzureCLI@2
            inputs: {azureSubscription: cloud, scriptType: bash, scriptLocation: inlineScript, inlineScript: echo}
  - job: again
    variables:
    - group: shared
    steps:
    - task: AzureCLI@2
      inputs: {azureSubscription: cloud, scriptType: bash, scriptLocation: inlineScript, inlineScript: echo}
"""


def stored(document: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(document)))  # as the database gives it back


def legacy_view(plan: Plan) -> Plan:
    """What the snake_case form keeps: no pools, strategies, parameters or environment resources."""
    def job(j: Job) -> Job:
        environment = Environment(j.environment.name) if j.environment else None
        return replace(j, pool=None, strategy=None, environment=environment)

    stages = tuple(replace(s, jobs=tuple(job(j) for j in s.jobs)) for s in plan.stages)
    return replace(plan, stages=stages, parameters={})


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.name for sample in SAMPLES])
def test_both_stored_forms_read_back_typed(sample: Path) -> None:
    plan = compile_pipeline(load_pipeline(sample))
    assert plan_store.load(stored(plan.to_dict())) == plan
    assert plan_store.load(stored(plan_doc(plan))) == legacy_view(plan)


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.name for sample in SAMPLES])
def test_a_claim_reads_one_job(sample: Path) -> None:
    plan = compile_pipeline(load_pipeline(sample))
    for document, expected in ((plan.to_dict(), plan), (plan_doc(plan), legacy_view(plan))):
        for stage in expected.stages:
            for job in stage.jobs:
                narrowed = plan_store.job_plan(stored(document), stage.name, job.name)
                assert narrowed.stages == (replace(stage, jobs=(job,)),)
                assert narrowed.variables == expected.variables
    with pytest.raises(KeyError, match="the run's plan has no job 'nope' in stage"):
        plan_store.job_plan(plan.to_dict(), plan.stages[0].name, "nope")


def test_resources_of_both_forms(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(RESOURCES, encoding="utf-8")
    plan = compile_pipeline(load_pipeline(tmp_path / "p.yml"))
    expected = [("variablegroup", "shared"), ("variablegroup", "stage-group"), ("environment", "prod"),
                ("connection", "cloud")]  # fmt: skip
    assert plan_store.resources(stored(plan_doc(plan))) == expected
    assert plan_store.resources(stored(plan.to_dict())) == expected


def test_step_ids_are_position_and_name() -> None:
    plan = compile_pipeline(load_pipeline("steps:\n- script: a\n  name: first\n- script: b\n", name="p.yml"))
    steps = plan.stages[0].jobs[0].steps
    assert [plan_store.step_id(step, index) for index, step in enumerate(steps)] == ["001-first", "002-CmdLine"]


def test_azure_cli_v1_steps_use_their_connection_like_v2() -> None:
    text = """trigger: none
steps:
- task: AzureCLI@1
  inputs: {connectedServiceNameARM: legacy, scriptLocation: inlineScript, inlineScript: az account show}
- task: AzureCLI@2
  inputs: {azureSubscription: cloud, scriptType: bash, scriptLocation: inlineScript, inlineScript: echo}
"""
    plan = compile_pipeline(load_pipeline(text))
    assert plan_store.resources(plan.to_dict()) == [("connection", "legacy"), ("connection", "cloud")]
