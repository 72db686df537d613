"""One serialisation of the compiled plan with a round trip: Plan.from_dict(plan.to_dict()) == plan, also
through JSON (as a run stores it), for every sample pipeline and every template/variable case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlyard.pipelines import Diagnostic, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.model import Environment, Job, Pool, Stage, Step, Variable, VariableGroup
from mlyard.pipelines.plan import variable_entries
from tests.pipelines.conftest import DATA, load_cases, write_tree

SAMPLES = sorted((DATA / "valid").glob("*.yml"))
CASES = [case for case in load_cases("templates.yml", "variables.yml") if "error" not in case]


def assert_round_trip(plan: Plan) -> None:
    assert Plan.from_dict(plan.to_dict()) == plan
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.name for sample in SAMPLES])
def test_sample_plans_round_trip(sample: Path) -> None:
    assert_round_trip(compile_pipeline(load_pipeline(sample)))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case_plans_round_trip(case: dict[str, Any], tmp_path: Path) -> None:
    write_tree(tmp_path, case["files"])
    arguments = (case.get("parameters"), case.get("variables"), case.get("context"))
    assert_round_trip(compile_pipeline(load_pipeline(tmp_path / "main.yml"), *arguments, repo_root=tmp_path))


def test_every_field_round_trips() -> None:
    step = Step("s", "task", "Run", task="AzureCLI@2", inputs={"a": [1, {"b": "c"}]}, env={"E": "$(x)"},
                condition="always()", continue_on_error=True, timeout_in_minutes=3, enabled=False,
                retry_count_on_task_failure=2, unsupported="task Docker@2 ... mlyard does not run it")  # fmt: skip
    deploy = Job("d", "deployment", "Deploy", depends_on=("j",), condition="failed()", timeout_in_minutes=9,
                 cancel_timeout_in_minutes=2, continue_on_error=True, pool=Pool("p", "ubuntu-latest", ("x -equals y",)),
                 workspace_clean="all", environment=Environment("prod", "web", "VirtualMachine"), strategy="runOnce",
                 variables=(VariableGroup("g"), Variable("v", "1", readonly=True)), steps=(step,))  # fmt: skip
    plain = Job("j", "job", "J", pool=Pool())
    plan = Plan("p", (Stage("S", "Stage S", ("R",), "always()", (Variable("a", "b"),), (plain, deploy)),),
                variables=(Variable("x", "y"),), parameters={"n": 1, "o": {"k": ["v"]}}, run_name="r-$(Rev:r)",
                warnings=("w",), unsupported=(Diagnostic("ci.yml", 3, 5, "steps[0].task", "Docker@2"),))  # fmt: skip
    assert_round_trip(plan)


def test_variable_entries_read_both_spellings_of_readonly() -> None:
    stored = [{"group": "g"}, {"name": "a", "value": "1", "readonly": False}]
    stored.append({"name": "b", "value": 2, "readonly": True})
    assert variable_entries(stored) == (VariableGroup("g"), Variable("a", "1"), Variable("b", "2", readonly=True))
