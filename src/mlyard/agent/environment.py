"""What a step process sees: environment variables, expanded inputs and resolved paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlyard.agent.state import JobState
from mlyard.pipelines.expressions import expand_macros
from mlyard.protocol import StepSpec

MARK_ENV = "MLYARD_AGENT_MARK"


def expand(job: JobState, value: Any) -> str:
    """An input with its `$(name)` macros replaced (secret variables too; unknown names stay)."""
    return expand_macros("" if value is None else str(value), job.variables.all())


def step_input(job: JobState, step: StepSpec, name: str, default: str = "") -> str:
    value = step.inputs.get(name)
    return expand(job, default if value is None or value == "" else value)


def input_flag(job: JobState, step: StepSpec, name: str) -> bool:
    return step_input(job, step, name, "false").strip().lower() == "true"


def resolve_path(job: JobState, value: str) -> Path:
    """A path input: relative ones are relative to System.DefaultWorkingDirectory."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(job.variables.get("System.DefaultWorkingDirectory") or job.workspace.sources) / path
    return path


def working_directory(job: JobState, step: StepSpec, name: str = "workingDirectory") -> Path:
    value = step_input(job, step, name)
    if value.strip():
        return resolve_path(job, value)
    return Path(job.variables.get("System.DefaultWorkingDirectory") or job.workspace.sources)


def step_environment(job: JobState, step: StepSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The agent's environment, the non-secret variables (Azure naming), `extra` (task settings), the
    step's `env:` mapping (the only way secrets get in), PATH with this Python's directory first."""
    env = dict(os.environ)
    env.update(job.variables.environment())
    env.update(extra or {})
    env.update({str(key): expand(job, value) for key, value in step.env.items()})
    path = [*job.prepend_path, str(Path(sys.executable).parent), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(part for part in path if part)
    env.setdefault("PYTHONUNBUFFERED", "1")  # live logs, and stdout/stderr lines in the order written
    env["MLYARD_JOB"] = str(job.spec.job_id)
    env[MARK_ENV] = os.environ.get(MARK_ENV, "")
    env["MLYARD_JOB_RUN"] = job.run_id
    return env
