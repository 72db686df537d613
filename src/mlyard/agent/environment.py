"""What a step process sees: environment variables, expanded inputs and resolved paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlyard.agent.state import JobState, StepError
from mlyard.pipelines.expressions import expand_macros
from mlyard.protocol import StepSpec
from mlyard.sandbox import passed_environment

MARK_ENV = "MLYARD_AGENT_MARK"


def expand(job: JobState, value: Any) -> str:
    """An input with its `$(name)` macros replaced (secret variables too; unknown names stay)."""
    return expand_macros("" if value is None else str(value), job.variables.all())


def raw_input(step: StepSpec, name: str, aliases: tuple[str, ...] = ()) -> Any:
    """An input as written, by its name or one of its aliases; Azure reads input names case-insensitively
    (`sourceFolder` is `SourceFolder`)."""
    for key in (name, *aliases):
        if key in step.inputs:
            return step.inputs[key]
    wanted = {key.lower() for key in (name, *aliases)}
    for key, value in step.inputs.items():
        if str(key).lower() in wanted:
            return value
    return None


def step_input(job: JobState, step: StepSpec, name: str, default: str = "", *, aliases: tuple[str, ...] = ()) -> str:
    """An input with its macros expanded; `default` (the task's documented default) when absent or empty."""
    value = raw_input(step, name, aliases)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return expand(job, default if value is None or value == "" else value)


def input_flag(
    job: JobState, step: StepSpec, name: str, default: bool = False, *, aliases: tuple[str, ...] = ()
) -> bool:
    """A boolean input: "true" (any case) is true; absent means `default`."""
    return step_input(job, step, name, "true" if default else "false", aliases=aliases).strip().lower() == "true"


def resolve_path(job: JobState, value: str) -> Path:
    """A path input: relative ones are relative to System.DefaultWorkingDirectory."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(job.variables.get("System.DefaultWorkingDirectory") or job.workspace.sources) / path
    return path


def inside_work_dir(job: JobState, value: str, what: str) -> Path:
    """A path input of a task the agent runs itself (artifacts, test results): resolved like any path
    input, symlinks followed, and refused unless it stays inside the job's work directory."""
    path = resolve_path(job, value)
    root = job.workspace.root.resolve()
    real = path.resolve()
    if real != root and not real.is_relative_to(root):
        shown = str(path) if real == path else f"{path} (-> {real})"
        raise StepError(
            f"{what} {shown} is outside the job's work directory {root}: tasks read and write only there; "
            "use a path under $(Pipeline.Workspace)"
        )
    return real


def working_directory(job: JobState, step: StepSpec, name: str = "workingDirectory") -> Path:
    value = step_input(job, step, name, aliases=("cwd",))
    if value.strip():
        return resolve_path(job, value)
    return Path(job.variables.get("System.DefaultWorkingDirectory") or job.workspace.sources)


def step_environment(job: JobState, step: StepSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of the agent's environment (PATH, locale, TZ, TERM: nothing of the server's
    own settings or secrets), HOME in the job's work directory, the non-secret variables (Azure naming),
    `extra` (task settings), the step's `env:` mapping (the only way secrets get in), PATH with this
    Python's directory first, and the markers that let the agent kill what a step leaves behind."""
    env = passed_environment()
    env["HOME"] = str(job.workspace.home)
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
