"""Time CI trigger decisions (mlyard.pipelines.triggers) on a realistic trigger.

Run: python benchmarks/trigger_decisions.py [--decisions N] [--repeats R]
Prints the median time per decision (over R repeats of N decisions) for several push shapes.
Target: under 50 µs per decision with 20 changed paths.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import yaml

from mlyard.pipelines.triggers import Trigger, parse_trigger, trigger_decision

TRIGGER_YAML = """
trigger:
  batch: true
  branches:
    include: [main, master, 'releases/*', 'feature/*', 'hotfix/*', refs/tags/deploy-*]
    exclude: ['releases/old*', 'feature/*-working', 'feature/experimental/*']
  paths:
    include: [src, 'ml/**/train*.py', 'pipelines/*.yml', pyproject.toml]
    exclude: [docs, '**/*.md', src/tests, 'src/legacy/*', 'ml/notebooks']
  tags:
    include: ['v*']
    exclude: ['v0.*', '*-rc*']
"""

TARGET_US = 50.0

# 20 changed paths: docs and tests first (excluded or not included), the included one last.
LATE_MATCH = (
    [f"docs/guide/page{i}.md" for i in range(8)]
    + [f"src/tests/test_{i}.py" for i in range(6)]
    + [
        "README.md",
        "notebooks/explore.ipynb",
        "ml/notebooks/eda.py",
        "src/legacy/old.py",
        "scripts/release.sh",
        "src/mlyard/model.py",
    ]
)
NO_MATCH = [*LATE_MATCH[:-1], "CHANGELOG.md"]
EARLY_MATCH = ["src/mlyard/app.py", *LATE_MATCH[1:]]


def time_decisions(trigger: Trigger, ref: str, paths: Sequence[str], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        trigger_decision(trigger, ref, paths, "Update the training step")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    trigger = parse_trigger(yaml.safe_load(TRIGGER_YAML)["trigger"], present=True)
    shapes = [
        ("branch, 20 paths, included path last", "refs/heads/feature/ranking", LATE_MATCH),
        ("branch, 20 paths, none included (full scan)", "refs/heads/releases/2026.11", NO_MATCH),
        ("branch, 20 paths, first path included", "refs/heads/main", EARLY_MATCH),
        ("excluded branch", "refs/heads/feature/experimental/x", LATE_MATCH),
        ("tag push", "refs/tags/v1.4.0", LATE_MATCH),
    ]
    print(f"{args.decisions} decisions x {args.repeats} repeats; median per decision")
    for label, ref, paths in shapes:
        print(f"  decision: {trigger_decision(trigger, ref, paths)}")
        runs = [time_decisions(trigger, ref, paths, args.decisions) for _ in range(args.repeats)]
        median_us = statistics.median(runs) / args.decisions * 1e6
        print(f"{median_us:8.2f} µs  ({median_us / TARGET_US:.2f}x the {TARGET_US:.0f} µs target)  {label}")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.phase import machine_phase

    with machine_phase():
        main()
