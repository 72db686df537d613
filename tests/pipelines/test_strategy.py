"""Job strategies (issue 11): `strategy: matrix` / `parallel` / `maxParallel` copy a job into legs named
as Azure names them, at job level and at pipeline level; and the compile-time predefined variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlyard.cli.main import app
from mlyard.pipelines import PipelineError, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.model import Leg, Variable
from mlyard.pipelines.predefined import JobFacts, RunFacts, job_variables, template_context

MATRIX = """\
jobs:
- job: Build
  displayName: Build it
  variables:
    config: debug
  strategy:
    matrix:
      linux:
        imageName: ubuntu-latest
        config: release
      mac:
        imageName: macOS-latest
    maxParallel: 1
  pool:
    vmImage: $(imageName)
  steps:
  - script: echo $(imageName)
- job: Publish
  dependsOn: Build
  steps:
  - script: echo done
"""


def plan_of(text: str, **kwargs: object) -> Plan:
    return compile_pipeline(load_pipeline(text, name="ci.yml"), **kwargs)  # type: ignore[arg-type]


def test_a_matrix_makes_one_leg_per_configuration() -> None:
    linux, mac, publish = plan_of(MATRIX).jobs
    assert (linux.name, linux.display_name) == ("Build_linux", "Build it linux")
    assert (mac.name, mac.display_name) == ("Build_mac", "Build it mac")
    assert linux.leg == Leg("Build", "linux", 1, 2, 1)
    assert mac.leg == Leg("Build", "mac", 2, 2, 1)
    # the configuration's variables are job variables, after the job's own (so they win)
    assert linux.variables == (Variable("config", "debug"), Variable("imageName", "ubuntu-latest"),
                               Variable("config", "release"))  # fmt: skip
    assert mac.variables == (Variable("config", "debug"), Variable("imageName", "macOS-latest"))
    assert linux.steps == mac.steps and linux.pool == mac.pool
    # dependsOn on the job means every leg
    assert publish.depends_on == ("Build_linux", "Build_mac") and publish.leg is None


def test_a_pipeline_level_matrix_copies_the_single_job() -> None:
    text = "strategy:\n  matrix:\n    py310: {python: '3.10'}\n    py311: {python: '3.11'}\nsteps:\n- script: echo\n"
    jobs = plan_of(text).jobs
    assert [(job.name, job.display_name) for job in jobs] == [("Job_py310", "Job py310"), ("Job_py311", "Job py311")]
    assert [job.variables for job in jobs] == [(Variable("python", "3.10"),), (Variable("python", "3.11"),)]


def test_parallel_makes_numbered_slices() -> None:
    text = "jobs:\n- job: Test\n  strategy:\n    parallel: 3\n  steps:\n  - script: echo\n"
    jobs = plan_of(text).jobs
    assert [job.name for job in jobs] == ["Test_1", "Test_2", "Test_3"]
    assert [job.leg for job in jobs] == [Leg("Test", str(n), n, 3) for n in (1, 2, 3)]
    assert all(job.variables == () for job in jobs)


@pytest.mark.parametrize(
    "strategy",
    ["parallel: 1", "matrix: {}", "maxParallel: 2"],
    ids=["parallel-1", "empty-matrix", "only-maxParallel"],
)
def test_a_strategy_with_one_copy_leaves_the_job_as_written(strategy: str) -> None:
    (job,) = plan_of(f"jobs:\n- job: A\n  strategy: {{{strategy}}}\n  steps:\n  - script: echo\n").jobs
    assert (job.name, job.leg) == ("A", None)


def test_a_matrix_built_by_a_template_expression(tmp_path: Path) -> None:
    text = """\
parameters:
- name: pythons
  type: object
  default: ['3.10', '3.12']
jobs:
- job: Test
  strategy:
    matrix:
      ${{ each version in parameters.pythons }}:
        ${{ format('py{0}', replace(version, '.', '')) }}:
          python: ${{ version }}
  steps:
  - script: echo $(python)
- job: Whole
  strategy:
    matrix: ${{ parameters.legs }}
  steps:
  - script: echo
""".replace("- name: pythons", "- name: legs\n  type: object\n  default: {a: {x: 1}, b: {x: 2}}\n- name: pythons")
    jobs = compile_pipeline(load_pipeline(text, name="ci.yml"), repo_root=tmp_path).jobs
    assert [job.name for job in jobs] == ["Test_py310", "Test_py312", "Whole_a", "Whole_b"]
    assert jobs[1].variables == (Variable("python", "3.12"),)


def test_legs_round_trip_through_the_stored_plan() -> None:
    plan = plan_of(MATRIX)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.to_dict()["stages"][0]["jobs"][0]["leg"] == {
        "phase": "Build", "name": "linux", "position": 1, "total": 2, "maxParallel": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            "matrix: $[ dependencies.A.outputs['set.legs'] ]",
            "ci.yml:4:5: jobs[0].strategy.matrix: a matrix computed at run time ($[ ]) is not supported by mlyard; "
            "write the matrix in the YAML or build it with a ${{ }} template expression",
        ),
        (
            "matrix: {a: {x: 1}}\n    parallel: 2",
            "ci.yml:5:5: jobs[0].strategy: use either 'matrix' or 'parallel' in a job strategy, not both",
        ),
        (
            "matrix:\n      1st: {x: 1}",
            "ci.yml:5:7: jobs[0].strategy.matrix.1st: invalid matrix configuration name '1st': use letters, digits "
            "and '_', starting with a letter, at most 100 characters",
        ),
        (
            "matrix:\n      a: [1, 2]",
            "ci.yml:5:7: jobs[0].strategy.matrix.a: matrix configuration 'a' must be a mapping of variable names "
            "to values",
        ),
        (
            "parallel: 0",
            "ci.yml:4:5: jobs[0].strategy.parallel: 'parallel' must be a whole number from 1 to 256, got '0'",
        ),
        (
            "parallel: 2\n    maxParallel: 300",
            "ci.yml:5:5: jobs[0].strategy.maxParallel: 'maxParallel' must be a whole number from 0 to 256, got '300'",
        ),
    ],
    ids=["runtime-matrix", "both", "bad-name", "bad-configuration", "parallel-0", "maxParallel-too-big"],
)
def test_strategy_errors_say_what_and_where(strategy: str, expected: str) -> None:
    text = f"jobs:\n- job: A\n  strategy:\n    {strategy}\n  steps:\n  - script: echo\n"
    with pytest.raises(PipelineError) as raised:
        plan_of(text)
    assert raised.value.errors == [expected]


def test_a_top_level_strategy_needs_top_level_steps() -> None:
    with pytest.raises(PipelineError) as raised:
        plan_of("strategy:\n  parallel: 2\njobs:\n- job: A\n  steps:\n  - script: echo\n")
    assert raised.value.errors == [
        "ci.yml:1:1: strategy: a top-level 'strategy' applies only to a pipeline with top-level 'steps'; "
        "put it on a job"
    ]


def test_a_leg_name_taken_by_another_job_is_a_duplicate() -> None:
    text = "jobs:\n- job: A\n  strategy: {parallel: 2}\n  steps:\n  - script: echo\n"
    text += "- job: A_1\n  steps:\n  - script: echo\n"
    with pytest.raises(PipelineError) as raised:
        plan_of(text)
    assert raised.value.errors == ["ci.yml:6:3: jobs[1]: duplicate job name 'A_1' (first defined on line 2)"]


def test_a_leg_knows_its_position_in_the_phase() -> None:
    run = RunFacts(run_id=7, reason="Manual", source_branch="refs/heads/main", source_version="abc")
    plain = job_variables(run, JobFacts(1, "__default", "Publish", "Publish", 1))
    assert (plain["System.PhaseName"], plain["System.JobPositionInPhase"], plain["System.TotalJobsInPhase"]) == (
        "Publish", "1", "1",
    )  # fmt: skip
    leg = JobFacts(2, "__default", "Build_mac", "Build it mac", 1, phase="Build", position=2, total=2)
    values = job_variables(run, leg)
    assert (values["System.JobName"], values["System.PhaseName"]) == ("Build_mac", "Build")
    assert (values["System.JobPositionInPhase"], values["System.TotalJobsInPhase"]) == ("2", "2")


# -- compile-time predefined variables ---------------------------------------------------------------
PREDEFINED = """\
variables:
  ${{ if eq(variables['Build.SourceBranchName'], 'main') }}:
    target: prod
  ${{ else }}:
    target: dev
steps:
- script: echo ${{ variables.target }} ${{ variables['Build.Reason'] }} ${{ variables['System.TeamProject'] }}
"""


def test_predefined_variables_are_seen_by_template_expressions() -> None:
    context = template_context({"build.sourcebranch": "refs/heads/main", "Build.Reason": "IndividualCI"})
    assert context == {
        "Build.SourceBranch": "refs/heads/main", "Build.Reason": "IndividualCI", "System.TeamProject": "mlyard",
        "Build.SourceBranchName": "main",
    }  # fmt: skip
    (job,) = plan_of(PREDEFINED, context=context).jobs
    assert job.steps[0].script == "echo prod IndividualCI mlyard"


def test_offline_expand_takes_predefined_variables_from_var(tmp_path: Path) -> None:
    file = tmp_path / "ci.yml"
    file.write_text(PREDEFINED)
    runner = CliRunner()
    arguments = ["pipelines", "expand", str(file), "--json", "--var", "Build.SourceBranch=refs/heads/main"]
    result = runner.invoke(app, [*arguments, "--var", "Build.Reason=Manual", "--var", "other=1"])
    assert result.exit_code == 0, result.output
    plan = Plan.from_dict(json.loads(result.stdout))
    assert plan.jobs[0].steps[0].script == "echo prod Manual mlyard"
    # the predefined ones are not queue-time variables of the plan; the others are
    assert plan.variables == (Variable("target", "prod"), Variable("other", "1"))
    result = runner.invoke(app, ["pipelines", "expand", str(file), "--json"])
    assert Plan.from_dict(json.loads(result.stdout)).jobs[0].steps[0].script == "echo dev  mlyard"


def test_offline_validate_takes_predefined_variables_from_var(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text("steps:\n- script: echo release\n")
    file = tmp_path / "ci.yml"
    file.write_text("steps:\n- template: ${{ variables['Build.SourceBranchName'] }}.yml\n")
    runner = CliRunner()
    result = runner.invoke(app, ["pipelines", "validate", str(file), "--var", "Build.SourceBranch=refs/heads/main"])
    assert result.exit_code == 0 and result.stdout == f"{file}: valid\n"
    result = runner.invoke(app, ["pipelines", "validate", str(file)])
    assert result.exit_code == 1
