"""Shared helpers for the pipeline language tests: data files and small pipeline repos on disk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests import yamldata

DATA = Path(__file__).parents[1] / "data" / "pipelines"


def load_cases(*names: str) -> list[dict[str, Any]]:
    """The cases of data files under tests/data/pipelines/cases/, each with a `source:` page title."""
    cases: list[dict[str, Any]] = []
    for name in names:
        document = yamldata.read(DATA / "cases" / name)
        cases.extend(document["cases"])
    return cases


def write_tree(root: Path, files: dict[str, str]) -> None:
    """Create the files of a small repository below `root`."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def lookup(document: Any, path: str) -> Any:
    """`stages[0].jobs[1].job` in a nested dict/list document."""
    value = document
    for name, index in _TOKEN.findall(path):
        value = value[int(index)] if index else value[name]
    return value


def summary(plan: Any) -> list[str]:
    """Every step of every job: script text, `checkout self`, `publish path`, `download name`, or task."""
    result = []
    for job in plan.jobs:
        for step in job.steps:
            if step.kind in ("script", "bash"):
                result.append(step.inputs["script"])
            elif step.kind == "checkout":
                result.append(f"checkout {step.inputs['repository']}")
            elif step.kind == "publish":
                result.append(f"publish {step.inputs['targetPath']}")
            elif step.kind == "download":
                result.append(f"download {step.inputs.get('artifact')}")
            else:
                result.append(str(step.task))
    return result
