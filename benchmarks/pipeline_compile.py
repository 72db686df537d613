"""Benchmark: load + compile of a 300-step pipeline built from step templates, and trigger decisions.

Run: python benchmarks/pipeline_compile.py [--runs 20]. Prints medians (targets from issue 3:
compile < 50 ms, one trigger decision < 50 us) and their ratio to the target.
"""

from __future__ import annotations

import argparse
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


def write_pipeline(root: Path) -> Path:
    """A pipeline of STAGES x JOBS jobs, each calling the step template CALLS times."""
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
                    f"        component: c{call}",
                    f"        tasks: [{tasks}]",
                    "        verbose: ${{ parameters.verbose }}",
                ]
    path = root / "azure-pipelines.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def median_seconds(action: object, runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


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
        compile_s = median_seconds(lambda: compile_pipeline(load_pipeline(path), repo_root=folder), args.runs)
        pipeline = load_pipeline(path)
    ratio = compile_s / 0.05
    print(
        f"load + compile, {steps} steps from templates: median {compile_s * 1000:.1f} ms "
        f"(target 50 ms, ratio {ratio:.2f})"
    )

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
    main()
