"""Benchmark: load + compile of pipelines built from templates, and trigger decisions.

Run: python benchmarks/pipeline_compile.py [--runs 20]. Prints medians of wall and CPU time (CPU time is
what a busy machine does not inflate) and their ratio to the target:
(a) a pipeline with 300 steps from a step template, load + compile < 30 ms (issue 15; was 50 ms in
issues 3 and 11), with a breakdown of where the time goes (cProfile: parse and check, expansion, checking
the expanded tree, building the plan); each job calls the template with the same five parameter sets, so
a template included again with the same values is expanded once (docs/pipelines.md): the same pipeline
with values of its own at every call is measured beside it;
(b) a 40-file template tree (an extends template, stage, job and step templates with parameters,
``${{ each }}`` and ``${{ if }}``: the size of large projects' shared build templates), < 200 ms (issue 11);
(c) one trigger decision < 50 us (issue 3).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from mlyard.pipelines import compile_pipeline, load_pipeline, trigger_decision

STAGES, JOBS, STEPS_PER_CALL, CALLS = 3, 2, 10, 5  # 3 * 2 * 5 * 10 = 300 steps

STEP_TEMPLATE = """\
parameters:
- name: component
  type: string
- name: tasks
  type: object
  default: []
- name: verbose
  type: boolean
  default: false
steps:
- ${{ each task in parameters.tasks }}:
  - script: make ${{ task }} COMPONENT=${{ parameters.component }}
    displayName: ${{ task }} ${{ parameters.component }}
    env:
      COMPONENT: ${{ parameters.component }}
      ${{ if parameters.verbose }}:
        VERBOSE: "1"
    condition: and(succeeded(), ne(variables['skip_${{ task }}'], 'true'))
"""


def write_pipeline(root: Path, distinct: bool = False) -> Path:
    """A pipeline of STAGES x JOBS jobs, each calling the step template CALLS times: with the same CALLS
    parameter sets in every job, or (``distinct``) with values of its own at each of the 30 calls, which no
    reuse of an expanded template can serve."""
    (root / "templates").mkdir()
    (root / "templates" / "steps.yml").write_text(STEP_TEMPLATE, encoding="utf-8")
    tasks = ", ".join(f"t{index}" for index in range(STEPS_PER_CALL))
    lines = [
        "trigger:",
        "  branches: {include: [main, 'releases/*'], exclude: [releases/old]}",
        "  paths: {include: [src], exclude: [src/docs]}",
        "parameters:",
        "- name: verbose",
        "  type: boolean",
        "  default: true",
        "variables:",
        "  configuration: release",
        "stages:",
    ]
    for stage in range(STAGES):
        lines += [f"- stage: S{stage}", "  jobs:"]
        for job in range(JOBS):
            lines += [f"  - job: J{job}", "    steps:"]
            for call in range(CALLS):
                lines += [
                    "    - template: templates/steps.yml",
                    "      parameters:",
                    f"        component: c{call}" + (f"s{stage}j{job}" if distinct else ""),
                    f"        tasks: [{tasks}]",
                    "        verbose: ${{ parameters.verbose }}",
                ]
    path = root / "azure-pipelines.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# (b) the template tree: 1 pipeline + 1 extends template + 6 stage + 12 job + 20 step templates = 40 files.
TREE_STAGES, TREE_JOBS, TREE_STEPS = 6, 12, 20
PLATFORMS = [("linux", "linux"), ("windows", "windows"), ("macos", "osx")]
CONFIGURATIONS = ["Debug", "Release"]

TREE_ROOT = """\
trigger:
  branches: {include: [main, 'release/*']}
parameters:
- name: runTests
  type: boolean
  default: true
- name: configurations
  type: object
  default: [Debug, Release]
variables:
- name: officialBuild
  value: ${{ eq(variables['Build.Reason'], 'Schedule') }}
extends:
  template: eng/pipeline.yml
  parameters:
    runTests: ${{ parameters.runTests }}
    configurations: ${{ parameters.configurations }}
    platforms:
%(platforms)s
    stages:
%(stages)s
"""

TREE_PIPELINE = """\
parameters:
- name: stages
  type: object
- name: platforms
  type: object
- name: configurations
  type: object
- name: runTests
  type: boolean
  default: true
variables:
- name: repoName
  value: mlyard
stages:
- ${{ each stage in parameters.stages }}:
  - template: stages/${{ stage.file }}.yml
    parameters:
      name: ${{ stage.name }}
      jobs: ${{ stage.jobs }}
      platforms: ${{ parameters.platforms }}
      configurations: ${{ parameters.configurations }}
      ${{ if parameters.runTests }}:
        runTests: true
"""

TREE_STAGE = """\
parameters:
- name: name
  type: string
- name: jobs
  type: object
- name: platforms
  type: object
- name: configurations
  type: object
- name: runTests
  type: boolean
  default: false
stages:
- stage: ${{ parameters.name }}
  displayName: ${{ format('Stage {0}', parameters.name) }}
  variables:
    stageName: ${{ parameters.name }}
  jobs:
  - ${{ each platform in parameters.platforms }}:
    - ${{ each job in parameters.jobs }}:
      - template: ../jobs/${{ job }}.yml
        parameters:
          platform: ${{ platform }}
          configurations: ${{ parameters.configurations }}
          runTests: ${{ parameters.runTests }}
"""

TREE_JOB = """\
parameters:
- name: platform
  type: object
- name: configurations
  type: object
- name: runTests
  type: boolean
  default: false
jobs:
- job: %(name)s_${{ parameters.platform.name }}
  displayName: %(name)s ${{ parameters.platform.name }}
  pool:
    ${{ if eq(parameters.platform.os, 'windows') }}:
      vmImage: windows-latest
    ${{ elseif eq(parameters.platform.os, 'osx') }}:
      vmImage: macOS-latest
    ${{ else }}:
      vmImage: ubuntu-latest
  timeoutInMinutes: 90
  variables:
    platformName: ${{ parameters.platform.name }}
  steps:
  - checkout: self
    fetchDepth: 1
  - ${{ each configuration in parameters.configurations }}:
%(steps)s
"""

TREE_JOB_STEP = """\
    - template: ../steps/%(step)s.yml
      parameters:
        configuration: ${{ configuration }}
        platform: ${{ parameters.platform.name }}
        runTests: ${{ parameters.runTests }}
        arguments: [--verbose, '--config=${{ configuration }}']
"""

TREE_STEP = """\
parameters:
- name: configuration
  type: string
- name: platform
  type: string
- name: runTests
  type: boolean
  default: false
- name: arguments
  type: object
  default: []
steps:
- script: ./build.sh %(name)s ${{ join(' ', parameters.arguments) }}
  displayName: ${{ format('{0} {1} ({2})', '%(name)s', parameters.configuration, parameters.platform) }}
  env:
    CONFIGURATION: ${{ parameters.configuration }}
    ${{ each argument in parameters.arguments }}:
      ARG_${{ replace(replace(argument, '-', ''), '=', '_') }}: ${{ argument }}
- ${{ if parameters.runTests }}:
  - bash: ./test.sh %(name)s --configuration ${{ parameters.configuration }}
    displayName: Test %(name)s
    condition: and(succeeded(), ne(variables['skipTests'], 'true'))
- ${{ if and(eq(parameters.configuration, 'Release'), ne(parameters.platform, 'macos')) }}:
  - publish: out/%(name)s/${{ parameters.configuration }}
    artifact: %(name)s_${{ parameters.platform }}_${{ parameters.configuration }}
"""


def write_tree(root: Path) -> Path:
    """The 40-file template tree; returns the top-level pipeline."""
    for folder in ("eng/stages", "eng/jobs", "eng/steps"):
        (root / folder).mkdir(parents=True)
    for step in range(TREE_STEPS):
        (root / f"eng/steps/step{step}.yml").write_text(TREE_STEP % {"name": f"part{step}"}, encoding="utf-8")
    for job in range(TREE_JOBS):
        chosen = (job, job + 1, TREE_JOBS + job % (TREE_STEPS - TREE_JOBS))  # every step template is used
        steps = "".join(TREE_JOB_STEP % {"step": f"step{index}"} for index in chosen)
        text = TREE_JOB % {"name": f"J{job}", "steps": steps.rstrip()}
        (root / f"eng/jobs/job{job}.yml").write_text(text, encoding="utf-8")
    for stage in range(TREE_STAGES):
        (root / f"eng/stages/stage{stage}.yml").write_text(TREE_STAGE, encoding="utf-8")
    (root / "eng/pipeline.yml").write_text(TREE_PIPELINE, encoding="utf-8")
    platforms = "\n".join(f"    - {{name: {name}, os: {os}}}" for name, os in PLATFORMS)
    stages = "\n".join(
        f"    - {{name: S{stage}, file: stage{stage}, jobs: [job{2 * stage}, job{2 * stage + 1}]}}"
        for stage in range(TREE_STAGES)
    )
    path = root / "azure-pipelines.yml"
    path.write_text(TREE_ROOT % {"platforms": platforms, "stages": stages}, encoding="utf-8")
    assert len(list(root.rglob("*.yml"))) == 40
    return path


def median_seconds(action: object, runs: int) -> float:
    return median_times(action, runs)[0]


def median_times(action: object, runs: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of `runs` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        action()  # type: ignore[operator]
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), statistics.median(cpus)


def report(label: str, seconds: float, target: float, cpu: float | None = None) -> None:
    measured = f"median {seconds * 1000:.1f} ms"
    if cpu is not None:
        measured += f" wall, {cpu * 1000:.1f} ms CPU"
    ratio = f"ratio {seconds / target:.2f}" + (f" wall, {cpu / target:.2f} CPU" if cpu is not None else "")
    print(f"{label}: {measured} (target {target * 1000:.0f} ms, {ratio})")


# (module, function) -> label: where the time of a load + compile goes
PARTS = (
    ("parser.py", "load_pipeline", "load: parse the YAML (positions kept), check it"),
    ("templates.py", "expand_pipeline", "expand templates and ${{ }} expressions"),
    ("compile.py", "_check_expanded", "check the expanded tree against the schema"),
    ("compile.py", "plan", "build the plan (steps, tasks, variables)"),
)


def breakdown(action: object, runs: int = 5) -> None:
    """The share of each part of a load + compile (cProfile cumulative times, so the profiler's own overhead
    is spread over them; the shares are what matters)."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(runs):
        action()  # type: ignore[operator]
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, name), (_, _, tt, _, _) in stats.items())
    for module, function, label in PARTS:
        spent = sum(ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                    if file.endswith(module) and name == function)  # fmt: skip
        print(f"    {label:<58}{100 * spent / total:5.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_pipeline(Path(folder))
        plan = compile_pipeline(load_pipeline(path), repo_root=folder)
        steps = sum(len(job.steps) for job in plan.jobs)
        assert steps == STAGES * JOBS * CALLS * STEPS_PER_CALL, steps
        action = lambda: compile_pipeline(load_pipeline(path), repo_root=folder)  # noqa: E731
        compile_s, compile_cpu = median_times(action, args.runs)
        pipeline = load_pipeline(path)
        report(f"load + compile, {steps} steps from templates", compile_s, 0.03, compile_cpu)
        print("  where the time goes:")
        breakdown(action)
    with tempfile.TemporaryDirectory() as folder:
        path = write_pipeline(Path(folder), distinct=True)
        action = lambda: compile_pipeline(load_pipeline(path), repo_root=folder)  # noqa: E731
        distinct_s, distinct_cpu = median_times(action, args.runs)
        report("  the same, every call with values of its own (no reuse)", distinct_s, 0.03, distinct_cpu)
    with tempfile.TemporaryDirectory() as folder:
        path = write_tree(Path(folder))
        plan = compile_pipeline(load_pipeline(path), repo_root=folder)
        jobs = len(plan.jobs)
        steps = sum(len(job.steps) for job in plan.jobs)
        tree_s, tree_cpu = median_times(lambda: compile_pipeline(load_pipeline(path), repo_root=folder), args.runs)
    shape = f"{len(plan.stages)} stages, {jobs} jobs, {steps} steps"
    report(f"load + compile, 40-file template tree ({shape})", tree_s, 0.2, tree_cpu)

    pushes = [
        ("refs/heads/main", ["src/app.py"], "change"),
        ("refs/heads/releases/1.0", ["src/docs/readme.md"], "docs"),
        ("refs/heads/feature/x", ["src/app.py"], "feature"),
        ("refs/heads/main", ["src/app.py"], "fix [skip ci]"),
    ]

    def decide() -> None:
        for index in range(args.decisions):
            ref, changed, message = pushes[index % len(pushes)]
            trigger_decision(pipeline, ref, changed, message)

    per_decision = median_seconds(decide, 5) / args.decisions
    ratio = per_decision / 50e-6
    print(
        f"trigger decision: median {per_decision * 1e6:.1f} us over {args.decisions} decisions "
        f"(target 50 us, ratio {ratio:.2f})"
    )


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.phase import machine_phase

    with machine_phase():
        main()
