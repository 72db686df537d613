"""Helpers for the agent tests: a JobReporter that records every call (the transport is the only thing
replaced; steps run as real bash/python/git processes), and builders for job and step specs."""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlyard.agent import run_job
from mlyard.protocol import CoverageSummary, Issue, JobOutcome, JobSpec, StepSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "agent"
TOKEN = "job-token-7f3a9c"


@dataclass
class Recorder:
    """Records what the executor reports; artifacts are folders under `store`."""

    store: Path
    cancel_when: Callable[[Recorder], bool] = lambda recorder: False
    events: list[tuple[str, str]] = field(default_factory=list)
    results: dict[str, tuple[str, list[Issue]]] = field(default_factory=dict)
    logs: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))
    stamps: list[float] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    coverage: list[CoverageSummary] = field(default_factory=list)

    def step_started(self, step: StepSpec) -> None:
        self.events.append(("started", step.id))

    def step_finished(self, step: StepSpec, result: str, issues: list[Issue]) -> None:
        self.events.append(("finished", step.id))
        self.results[step.id] = (result, list(issues))

    def log(self, step: StepSpec | None, lines: list[tuple[float, str]]) -> None:
        self.logs[step.id if step else None].extend(text for _, text in lines)
        self.stamps.extend(when for when, _ in lines)

    def upload_artifact(self, name: str, source: Path) -> None:
        target = self.store / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)
        self.uploads.append(name)

    def download_artifact(self, name: str, target: Path, run_id: int | None = None) -> None:
        source = self.store / name if run_id is None else self.store / f"run-{run_id}" / name
        shutil.copytree(source, target, dirs_exist_ok=True)

    def list_artifacts(self) -> list[str]:
        return sorted(path.name for path in self.store.iterdir())

    def publish_test_results(self, summary: dict[str, Any]) -> None:
        self.tests.append(summary)

    def publish_coverage(self, summary: CoverageSummary) -> None:
        self.coverage.append(summary)

    def cancel_requested(self) -> bool:
        return self.cancel_when(self)

    # -- reading what was recorded
    def result(self, step_id: str) -> str:
        return self.results[step_id][0]

    def issues(self, step_id: str) -> list[tuple[str, str]]:
        return [(issue.type, issue.message) for issue in self.results[step_id][1]]

    def text(self, step_id: str | None) -> str:
        return "\n".join(self.logs.get(step_id, []))

    def all_text(self) -> str:
        return "\n".join(line for lines in self.logs.values() for line in lines)


def step(name: str, task: str = "CmdLine@2", **fields: Any) -> StepSpec:
    inputs = fields.pop("inputs", {})
    return StepSpec(id=name, name=name, display_name=fields.pop("display_name", name), kind=fields.pop("kind", "task"),
                    task=task, inputs=inputs, **fields)  # fmt: skip


def script(name: str, text: str, **fields: Any) -> StepSpec:
    inputs = {"script": text, **fields.pop("inputs", {})}
    return step(name, "CmdLine@2", inputs=inputs, **fields)


def job(*steps: StepSpec, **fields: Any) -> JobSpec:
    variables = {"System.JobKind": "job", "Build.BuildId": "42", **fields.pop("variables", {})}
    return JobSpec(job_id=fields.pop("job_id", 7), run_id=3, attempt=1, stage="Build", name="compile",
                   display_name="Compile", access_token=TOKEN, steps=list(steps), variables=variables,
                   **fields)  # fmt: skip


@dataclass
class Runner:
    tmp: Path

    def __call__(self, spec: JobSpec, recorder: Recorder | None = None, **kwargs: Any) -> tuple[JobOutcome, Recorder]:
        recorder = recorder or self.recorder()
        outcome = run_job(spec, work_root=self.tmp / "work", reporter=recorder, **kwargs)
        return outcome, recorder

    def recorder(self, **kwargs: Any) -> Recorder:
        store = self.tmp / f"store-{uuid.uuid4().hex[:6]}"
        store.mkdir()
        return Recorder(store=store, **kwargs)


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def processes_with(variable: str, value: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment has variable=value."""
    found = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if process.environ().get(variable) == value:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found
