"""Script tasks: CmdLine@2 (`script:`), Bash@3 (`bash:`), PythonScript@0, AzureCLI@2 and AzureCLI@1.

They run in the job's sandbox (mlyard.sandbox); AzureCLI@2 also gets the local stores its service
connection names (an environment's MLflow SQLite folder and workspace) read-write.

Inline scripts are written to a file in Agent.TempDirectory and run with
`bash --noprofile --norc -e -o pipefail FILE`; script files (Bash@3 filePath, AzureCLI@2 scriptPath) run
with plain `bash --noprofile --norc FILE ARGS`, as written.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import uuid
from pathlib import Path

from mlyard.agent.environment import (
    expand,
    input_flag,
    raw_input,
    resolve_path,
    step_environment,
    step_input,
    working_directory,
)
from mlyard.agent.process import run_process
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import FAILED, SUCCEEDED, StepSpec
from mlyard.sandbox import store_paths

INLINE_FLAGS = ["-e", "-o", "pipefail"]


def bash_path() -> str:
    return shutil.which("bash") or "/bin/bash"


def write_script(job: JobState, step: StepSpec, text: str, suffix: str) -> Path:
    """Write an inline script (macros expanded) and show it in the log, as Azure's tasks do."""
    path = job.workspace.temp / f"{uuid.uuid4()}{suffix}"
    path.write_text(text if text.endswith("\n") else text + "\n")
    job.log.write(step, "Script contents:")
    job.log.write(step, text.rstrip("\n"))
    return path


def run_command(
    job: JobState, step: StepSpec, run: StepRun, argv: list[str], *, cwd: Path, env: dict[str, str],
    fail_on_stderr: bool = False, label: str = "Bash", writable: list[Path] | None = None,
) -> str:  # fmt: skip
    """Run a step's process and turn its end into a result (exit code, failOnStderr)."""
    job.log.write(step, "========================== Starting Command Output ===========================")
    job.log.write(step, "[command]" + shlex.join(argv))
    timeout = step.timeout_in_minutes * job.minute if step.timeout_in_minutes > 0 else None
    end = run_process(argv, cwd=cwd, env=env, job=job, run=run, timeout_seconds=timeout, split_stderr=fail_on_stderr,
                      writable=writable or [])  # fmt: skip
    if end.exit_code != 0:
        run.error(f"{label} exited with code '{end.exit_code}'.")
        return FAILED
    if fail_on_stderr and end.stderr_lines:
        run.error(f"{label} wrote one or more lines to the standard error stream (failOnStderr is true).")
        return FAILED
    return SUCCEEDED


def _bash_inline(job: JobState, step: StepSpec, run: StepRun, script: str, extra: dict[str, str] | None = None,
                 *, arguments: str = "", fail_on_stderr_input: str = "failOnStderr") -> str:  # fmt: skip
    path = write_script(job, step, expand(job, script), ".sh")
    argv = [bash_path(), "--noprofile", "--norc", *INLINE_FLAGS, str(path), *shlex.split(arguments)]
    env = step_environment(job, step, extra)
    fail = input_flag(job, step, fail_on_stderr_input)
    return run_command(job, step, run, argv, cwd=working_directory(job, step), env=env, fail_on_stderr=fail,
                       writable=store_paths(extra or {}))  # fmt: skip


def _bash_file(
    job: JobState, step: StepSpec, run: StepRun, file_input: str, extra: dict[str, str] | None = None,
    *, fail_on_stderr_input: str = "failOnStderr", profile_flags: list[str] | None = None, arguments: str | None = None,
) -> str:  # fmt: skip
    path = resolve_path(job, step_input(job, step, file_input))
    if not path.is_file():
        raise StepError(f"the script file does not exist: {path}")
    flags = ["--noprofile", "--norc"] if profile_flags is None else profile_flags
    args = step_input(job, step, "arguments") if arguments is None else arguments
    argv = [bash_path(), *flags, str(path), *shlex.split(args)]
    env = step_environment(job, step, extra)
    fail = input_flag(job, step, fail_on_stderr_input)
    return run_command(job, step, run, argv, cwd=working_directory(job, step), env=env, fail_on_stderr=fail,
                       writable=store_paths(extra or {}))  # fmt: skip


def cmdline(step: StepSpec, job: JobState, run: StepRun) -> str:
    return _bash_inline(job, step, run, str(step.inputs.get("script") or ""))


def bash(step: StepSpec, job: JobState, run: StepRun) -> str:
    if step_input(job, step, "targetType", "filePath").lower() == "inline":
        return _bash_inline(job, step, run, str(step.inputs.get("script") or ""))
    options = (("--noprofile", "noProfile"), ("--norc", "noRc"))
    flags = [flag for flag, name in options if step_input(job, step, name, "true").strip().lower() == "true"]
    return _bash_file(job, step, run, "filePath", profile_flags=flags)


def python_script(step: StepSpec, job: JobState, run: StepRun) -> str:
    # Default: `python` of the folders UsePythonVersion@0 put first on PATH, else the agent's own Python.
    selected = shutil.which("python", path=os.pathsep.join(job.prepend_path)) if job.prepend_path else None
    interpreter = step_input(job, step, "pythonInterpreter") or selected or sys.executable
    if step_input(job, step, "scriptSource", "filePath").lower() == "inline":
        path = write_script(job, step, expand(job, step.inputs.get("script")), ".py")
    else:
        path = resolve_path(job, step_input(job, step, "scriptPath"))
        if not path.is_file():
            raise StepError(f"the script file does not exist: {path}")
    argv = [interpreter, str(path), *shlex.split(step_input(job, step, "arguments"))]
    env = step_environment(job, step)
    fail = input_flag(job, step, "failOnStderr")
    cwd = working_directory(job, step)
    return run_command(job, step, run, argv, cwd=cwd, env=env, fail_on_stderr=fail, label="Python")


def azure_cli(step: StepSpec, job: JobState, run: StepRun) -> str:
    """AzureCLI@2 and AzureCLI@1 run their bash script with the service connection's settings in the
    environment (AzureCLI@1 has no scriptType: its scripts are bash on Linux agents)."""
    name = step_input(job, step, "azureSubscription", aliases=("connectedServiceNameARM",)).strip()
    connection = job.spec.connections.get(name)
    if connection is None:
        known = ", ".join(sorted(job.spec.connections)) or "none"
        raise StepError(f"service connection '{name}' is not available to this job (available: {known})")
    if (step.task or "").lower() != "azurecli@1":
        script_type = step_input(job, step, "scriptType").strip().lower()
        if script_type != "bash":
            raise StepError(f"scriptType '{script_type}' is not supported by the mlyard agent; use scriptType: bash")
    extra = {**connection.settings, "AZURE_CONNECTION_NAME": connection.name}
    arguments = step_input(job, step, "arguments", aliases=("scriptArguments", "args"))
    if step_input(job, step, "scriptLocation", "scriptPath").lower() == "inlinescript":
        script = str(raw_input(step, "inlineScript") or "")
        return _bash_inline(job, step, run, script, extra, arguments=arguments,
                            fail_on_stderr_input="failOnStandardError")  # fmt: skip
    return _bash_file(job, step, run, "scriptPath", extra, fail_on_stderr_input="failOnStandardError",
                      arguments=arguments)  # fmt: skip
