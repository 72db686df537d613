"""Job strategies in a run (issue 11), in process: `maxParallel` bounds how many legs of a job are queued or
running, a job depending on the matrix job waits for every leg and reads their outputs as Azure names them,
each leg gets its matrix variables and position; and `timeoutInMinutes: 0` reaches the agent as 0 (bug 10)."""

from __future__ import annotations

from typing import Any

import pytest

from mlyard.ci import states
from tests.ci.engine import Engine

MATRIX = """\
trigger: none
jobs:
- job: Build
  strategy:
    matrix:
      a: {flavour: apple}
      b: {flavour: banana}
      c: {flavour: cherry}
    maxParallel: 2
  steps:
  - script: echo $(flavour)
- job: Publish
  dependsOn: Build
  condition: and(succeeded(), eq(dependencies.Build.outputs['b.set.ready'], 'yes'))
  variables:
    fromA: $[ dependencies.Build.outputs['a.set.ready'] ]
    buildResult: $[ dependencies.Build.result ]
  steps:
  - script: echo publish
"""


def names(specs: list[dict[str, Any]]) -> list[str]:
    return [str(spec["name"]) for spec in specs]


def test_max_parallel_bounds_the_running_legs_and_dependents_wait_for_all(engine: Engine) -> None:
    engine.repo("matrix", {"ci.yml": MATRIX})
    engine.pipeline("matrix", "matrix", "ci.yml")
    run_id = engine.run("matrix")
    first, second = engine.claim(), engine.claim()
    assert first is not None and second is not None
    assert names([first, second]) == ["Build_a", "Build_b"]
    assert engine.claim() is None  # maxParallel: 2 legs queued or running
    assert engine.job_states(run_id)["Build_c"] == states.NOT_STARTED
    engine.complete(int(str(first["job_id"])), "succeeded", {"set.ready": "no"})
    engine.settle()
    third = engine.claim()
    assert third is not None and third["name"] == "Build_c"
    assert engine.claim() is None  # Publish waits for every leg
    engine.complete(int(str(second["job_id"])), "succeeded", {"set.ready": "yes"})
    engine.complete(int(str(third["job_id"])), "succeeded")
    engine.settle()
    publish = engine.claim()
    assert publish is not None and publish["name"] == "Publish"
    variables = publish["variables"]
    assert isinstance(variables, dict)
    assert (variables["fromA"], variables["buildResult"]) == ("no", "Succeeded")
    legs = [first, second, third]
    assert [spec["display_name"] for spec in legs] == ["Build a", "Build b", "Build c"]
    keys = ("flavour", "System.PhaseName", "System.JobPositionInPhase", "System.TotalJobsInPhase")
    picked = [{key: spec["variables"][key] for key in keys} for spec in legs]  # type: ignore[index]
    assert picked == [
        {"flavour": fruit, "System.PhaseName": "Build", "System.JobPositionInPhase": str(position),
         "System.TotalJobsInPhase": "3"}
        for position, fruit in enumerate(("apple", "banana", "cherry"), start=1)
    ]  # fmt: skip
    engine.complete(int(str(publish["job_id"])), "succeeded")
    engine.settle()
    assert engine.run_state(run_id) == "succeeded"


def test_a_failed_leg_fails_the_matrix_job_for_its_dependents(engine: Engine) -> None:
    engine.repo("legs", {"ci.yml": MATRIX.replace("maxParallel: 2", "maxParallel: 0")})
    engine.pipeline("legs", "legs", "ci.yml")
    run_id = engine.run("legs")
    claimed = engine.drive({"Build_b": "failed"})
    assert sorted(names(claimed)) == ["Build_a", "Build_b", "Build_c"]  # no bound: all at once
    assert engine.job_states(run_id)["Publish"] == "skipped"
    assert engine.run_state(run_id) == "failed"


@pytest.mark.parametrize(("written", "sent"), [("timeoutInMinutes: 0", 0), ("timeoutInMinutes: 5", 5), ("", 60)])
def test_the_job_timeout_reaches_the_agent(engine: Engine, written: str, sent: int) -> None:
    # Azure: 0 is the maximum, which is no limit for a self-hosted agent; the agent reads 0 as no limit
    engine.repo("timeouts", {"ci.yml": f"trigger: none\njobs:\n- job: A\n  {written}\n  steps:\n  - script: echo\n"})
    engine.pipeline("timeouts", "timeouts", "ci.yml")
    engine.run("timeouts")
    spec = engine.claim()
    assert spec is not None and spec["timeout_in_minutes"] == sent


STAGES = """\
trigger: none
stages:
- stage: A
  jobs:
  - job: Build
    strategy:
      parallel: 2
    steps:
    - script: echo
- stage: B
  condition: eq(dependencies.A.outputs['Build.2.set.ready'], 'yes')
  jobs:
  - job: Use
    variables:
      first: $[ stageDependencies.A.Build.outputs['1.set.ready'] ]
      result: $[ stageDependencies.A.Build.result ]
    steps:
    - script: echo
"""


def test_a_later_stage_reads_the_outputs_of_legs(engine: Engine) -> None:
    engine.repo("stages", {"ci.yml": STAGES})
    engine.pipeline("stages", "stages", "ci.yml")
    run_id = engine.run("stages")
    outputs = {"Build_1": {"set.ready": "one"}, "Build_2": {"set.ready": "yes"}}
    claimed = engine.drive({}, outputs)
    assert names(claimed) == ["Build_1", "Build_2", "Use"]
    variables = claimed[-1]["variables"]
    assert isinstance(variables, dict) and (variables["first"], variables["result"]) == ("one", "Succeeded")
    assert engine.run_state(run_id) == "succeeded"
