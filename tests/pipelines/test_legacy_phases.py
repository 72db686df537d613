"""The legacy (pre-2019) `phases:` syntax that Azure still accepts: `phases:`/`- phase:`, `queue:` and
`server:` targets, phase templates, and the legacy `resources: - repo: self` list. It is read as the
current syntax (jobs, pool, strategy), with the positions of what it wrote for errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.model import Pool
from mlyard.pipelines.source import load_source
from mlyard.pipelines.template_check import check_template, looks_like_template

PHASES = """\
resources:
- repo: self
  clean: true
phases:
- phase: Build
  displayName: Build it
  queue:
    name: Default
    demands: agent.os -equals Linux
    timeoutInMinutes: 30
    cancelTimeoutInMinutes: 2
    parallel: 2
    matrix:
      debug:
        config: debug
      release:
        config: release
  variables:
    x: 1
  steps:
  - script: echo $(config)
- phase: Notify
  dependsOn: Build
  condition: always()
  continueOnError: true
  server: true
  steps:
  - script: echo done
- phase: Sliced
  dependsOn: []
  queue: Hosted Ubuntu 1604
  steps:
  - script: echo $(System.SliceNumber)
"""


def plan_of(text: str, **kwargs: object) -> Plan:
    return compile_pipeline(load_pipeline(text, name="ci.yml"), **kwargs)  # type: ignore[arg-type]


def errors_of(text: str, **kwargs: object) -> str:
    with pytest.raises(PipelineError) as caught:
        plan_of(text, **kwargs)
    return "\n".join(caught.value.errors)


def test_phases_are_jobs_and_a_queue_is_a_pool_a_strategy_and_timeouts() -> None:
    debug, release, notify, sliced = plan_of(PHASES).jobs
    assert (debug.name, debug.display_name) == ("Build_debug", "Build it debug")
    assert debug.pool == Pool(name="Default", demands=("agent.os -equals Linux",)) == release.pool
    assert (debug.timeout_in_minutes, debug.cancel_timeout_in_minutes) == (30, 2)
    # "parallel: 2 # Consume up to two agents at a time" with a matrix: its maxParallel
    assert debug.leg is not None and (debug.leg.total, debug.leg.max_parallel) == (2, 2)
    # `server: true` is `pool: server` (an agentless job), the other keys are the job's
    assert notify.pool == Pool(name="server") and notify.continue_on_error
    assert notify.depends_on == ("Build_debug", "Build_release") and notify.condition == "always()"
    assert sliced.pool == Pool(name="Hosted Ubuntu 1604") and sliced.depends_on == ()


def test_the_same_pipeline_in_the_current_syntax_has_the_same_plan() -> None:
    current = (
        PHASES.replace("resources:\n- repo: self\n  clean: true\n", "")
        .replace("phases:", "jobs:")
        .replace("- phase:", "- job:")
        .replace("  server: true\n", "  pool: server\n")
        .replace("  queue: Hosted Ubuntu 1604\n", "  pool: Hosted Ubuntu 1604\n")
        .replace(
            "  queue:\n    name: Default\n    demands: agent.os -equals Linux\n    timeoutInMinutes: 30\n"
            "    cancelTimeoutInMinutes: 2\n    parallel: 2\n    matrix:\n",
            "  pool:\n    name: Default\n    demands: agent.os -equals Linux\n  timeoutInMinutes: 30\n"
            "  cancelTimeoutInMinutes: 2\n  strategy:\n    maxParallel: 2\n    matrix:\n",
        )
    )
    assert "queue" not in current and "phase" not in current
    assert plan_of(PHASES).stages == plan_of(current).stages


def test_a_top_level_queue_or_server_with_steps_and_parallel_alone_slices() -> None:
    text = "queue:\n  name: Default\n  parallel: 2\n  container: ubuntu:22.04\nsteps:\n- script: echo\n"
    job, second = plan_of(text).jobs
    assert job.pool == Pool(name="Default") and job.container == "ubuntu:22.04"
    assert job.leg is not None and (job.leg.name, job.leg.total, second.leg and second.leg.position) == ("1", 2, 2)
    (agentless,) = plan_of("server:\n  timeoutInMinutes: 10\nsteps:\n- script: echo\n").jobs
    assert agentless.pool == Pool(name="server") and agentless.timeout_in_minutes == 10
    (agent,) = plan_of("server: false\nsteps:\n- script: echo\n").jobs
    assert agent.pool is None


def test_phase_templates_with_phases_or_jobs_and_directives(tmp_path: Path) -> None:
    (tmp_path / "phase.yml").write_text(
        "parameters:\n  name: X\nphases:\n- phase: ${{ parameters.name }}\n  queue: Default\n"
        "  steps:\n  - script: echo ${{ parameters.name }}\n",
        encoding="utf-8",
    )
    (tmp_path / "job.yml").write_text("jobs:\n- job: FromJobs\n  steps:\n  - script: echo\n", encoding="utf-8")
    (tmp_path / "ci.yml").write_text(
        "parameters:\n- name: extra\n  type: boolean\n  default: true\n"
        "phases:\n- template: phase.yml\n  parameters:\n    name: A\n- template: job.yml\n"
        "- ${{ if parameters.extra }}:\n  - phase: B\n    queue:\n      name: Default\n"
        "    steps:\n    - script: echo\n",
        encoding="utf-8",
    )
    plan = compile_pipeline(load_pipeline(tmp_path / "ci.yml"), repo_root=tmp_path)
    assert [(job.name, job.pool) for job in plan.jobs] == [
        ("A", Pool(name="Default")), ("FromJobs", None), ("B", Pool(name="Default")),
    ]  # fmt: skip
    assert check_template(tmp_path / "phase.yml", repo_root=tmp_path).kind == "jobs"
    assert looks_like_template(load_source((tmp_path / "phase.yml").read_text(encoding="utf-8"), "phase.yml").tree)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("phases:\n- phase: A\n  queue:\n    name: D\n    vmImage: x\n  steps:\n  - script: echo\n", "ci.yml:5:5",
         "phases[0].queue.vmImage: unknown key 'vmImage' in the legacy 'queue'; supported keys: name, demands"),
        ("phases:\n- phase: A\n  queue: D\n  pool: D\n  steps:\n  - script: echo\n", "ci.yml:3:3",
         "'queue' is the legacy form of 'pool', which is given too: keep only 'pool'"),
        ("phases:\n- phase: A\n  queue: D\n  server: true\n  steps:\n  - script: echo\n", "ci.yml:4:3",
         "a phase has one target: 'queue' or 'server', not both"),
        ("phases:\n- phase: A\n  server: [1]\n  steps:\n  - script: echo\n", "ci.yml:3:3",
         "expected true, false or a mapping, got a list; or write 'pool: server'"),
        ("phases:\n- phase: A\n  server:\n    demands: x\n  steps:\n  - script: echo\n", "ci.yml:4:5",
         "unknown key 'demands' in the legacy 'server'"),
        ("phases:\n- phase: A\n  steps:\n  - script: echo\njobs:\n- job: B\n  steps:\n  - script: echo\n", "ci.yml:1:1",
         "'phases' is the legacy form of 'jobs', which is given too: keep only 'jobs'"),
        ("phases:\n- phase: A-1\n  steps:\n  - script: echo\n", "ci.yml:2:3", "invalid name 'A-1'"),
        ("phases:\n- phase: A\n  dependsOn: Z\n  steps:\n  - script: echo\n", "ci.yml:3:3",
         "depends on unknown job 'Z'"),
    ],
)
def test_errors_name_the_legacy_key_where_it_is_written(text: str, where: str, message: str) -> None:
    errors = errors_of(text)
    assert any(line.startswith(where) and message in line for line in errors.splitlines()), errors


def test_a_phase_is_a_phases_item_only_and_the_current_syntax_is_untouched() -> None:
    # as in Microsoft's schema: `phase:` items are in `phases:`, not in `jobs:`
    assert "unknown key 'phase'" in errors_of("jobs:\n- phase: A\n  steps:\n  - script: echo\n")
    text = "jobs:\n- job: A\n  steps:\n  - script: echo\n"
    pipeline = load_pipeline(text, name="ci.yml")
    assert pipeline.tree is pipeline.source.tree and "jobs" in pipeline.tree


def test_phases_made_by_each_and_a_queue_inside_an_if() -> None:
    text = (
        "parameters:\n- name: os\n  type: object\n  default: [linux, mac]\n"
        "phases:\n- ${{ each os in parameters.os }}:\n  - phase: Build_${{ os }}\n"
        "    ${{ if eq(os, 'mac') }}:\n      queue: Mac\n    steps:\n    - script: echo ${{ os }}\n"
    )
    assert [(job.name, job.pool) for job in plan_of(text).jobs] == [("Build_linux", None), ("Build_mac", Pool("Mac"))]
