"""What the executor keeps while a job runs: the job-wide state and the state of the step attempt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlyard.agent.masking import Masker
from mlyard.agent.variables import VariableStore
from mlyard.agent.workspace import Workspace
from mlyard.protocol import CoverageSummary, Issue, JobSpec, StepSpec
from mlyard.sandbox import Sandbox

if TYPE_CHECKING:
    from pathlib import Path

    from mlyard.agent.warm import WarmPool

LOG_BATCH_SECONDS = 0.2
LOG_BATCH_LINES = 200


class JobReporter(Protocol):
    """Where a job's progress goes (the runner sends it to the server's agent API)."""

    def step_started(self, step: StepSpec) -> None: ...

    def step_finished(self, step: StepSpec, result: str, issues: list[Issue]) -> None: ...

    def log(self, step: StepSpec | None, lines: list[tuple[float, str]]) -> None:
        """Log lines, already masked: (unix time, text); step None = a job-level line."""
        ...

    def upload_artifact(self, name: str, source: Path) -> None: ...

    def download_artifact(self, name: str, target: Path, run_id: int | None = None) -> None:
        """Artifact `name` of this run, or of run `run_id` (a pipeline resource's run)."""
        ...

    def list_artifacts(self) -> list[str]:
        """The names of the artifacts the run has published so far."""
        ...

    def publish_test_results(self, summary: dict[str, Any]) -> None: ...

    def publish_coverage(self, summary: CoverageSummary) -> None: ...

    def cancel_requested(self) -> bool: ...


class StepError(Exception):
    """A step cannot run as written (bad input, missing file): the step fails with this message."""


class Interrupted(Exception):
    """A process was stopped: reason "timeout" (the step's), "job_timeout" or "canceled"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LogBuffer:
    """Masks lines and sends them in batches (every LOG_BATCH_SECONDS or LOG_BATCH_LINES lines)."""

    def __init__(self, reporter: JobReporter, masker: Masker) -> None:
        self.reporter = reporter
        self.masker = masker
        self._step: StepSpec | None = None
        self._lines: list[tuple[float, str]] = []
        self._last = time.monotonic()

    def write(self, step: StepSpec | None, text: str, when: float | None = None) -> None:
        if step is not self._step:
            self.flush()
            self._step = step
        for line in text.split("\n"):
            self._lines.append((when or time.time(), self.masker.mask(line.rstrip("\r"))))
        if len(self._lines) >= LOG_BATCH_LINES:
            self.flush()

    def tick(self) -> None:
        if self._lines and time.monotonic() - self._last >= LOG_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if self._lines:
            lines, self._lines = self._lines, []
            self.reporter.log(self._step, lines)


@dataclass(frozen=True)
class StepGroup:
    """The process group of one step process (its id is the leader's pid) and, for a sandboxed step, the pid
    of its PID namespace's init (bwrap's `child-pid`): once that one is gone or a zombie, the kernel has ended
    every process of the namespace."""

    pgid: int
    namespace_init: int | None = None


@dataclass
class JobState:
    spec: JobSpec
    workspace: Workspace
    variables: VariableStore
    masker: Masker
    reporter: JobReporter
    log: LogBuffer
    minute: float
    deadline: float  # time.monotonic() after which the job is out of time
    run_id: str  # unique per execution: MLYARD_JOB_RUN of every process, for the final clean-up
    status: str = "Succeeded"  # Agent.JobStatus: Succeeded, SucceededWithIssues, Failed, Canceled
    canceled: bool = False
    timed_out: bool = False
    message: str = ""
    prepend_path: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    secret_outputs: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    build_number: str | None = None
    process_groups: list[StepGroup] = field(default_factory=list)  # of every step process, for the clean-up
    sandbox: Sandbox = field(default_factory=Sandbox.none)  # how step processes are isolated
    warm: WarmPool | None = None  # the agent's warm sandboxes, when the job's directory is in their slot

    def add_secret(self, value: str) -> None:
        self.masker.add(value)


@dataclass
class StepRun:
    """One attempt of one step: its issues and the result a `task.complete` command asked for."""

    step: StepSpec
    issues: list[Issue] = field(default_factory=list)
    completed_result: str | None = None

    def warning(self, message: str) -> None:
        self.issues.append(Issue("warning", message))

    def error(self, message: str) -> None:
        self.issues.append(Issue("error", message))
