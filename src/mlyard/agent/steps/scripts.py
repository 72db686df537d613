"""Script tasks: CmdLine@2 (`script:`), Bash@3 (`bash:`), PowerShell@2 (`pwsh:`, `powershell:`),
PythonScript@0, AzureCLI@2 and AzureCLI@1.

They run in the job's sandbox (mlyard.sandbox); AzureCLI@2 also gets the local stores its service
connection names (an environment's MLflow SQLite folder and workspace) read-write.

Inline scripts are written to a file in Agent.TempDirectory and run with
`bash --noprofile --norc -e -o pipefail FILE`; script files (Bash@3 filePath, AzureCLI@2 scriptPath) run
with plain `bash --noprofile --norc FILE ARGS`, as written.

PowerShell@2 runs as Azure's agents run it on Linux and macOS, with PowerShell 7 (`pwsh`, found on the
step's PATH) whatever its `pwsh` input says: a generated script sets the preference variables, runs the
inline script (or dot-sources `filePath` with its arguments) and exits with `$LASTEXITCODE` unless
`ignoreLASTEXITCODE`; it runs with `pwsh -NoLogo -NoProfile -NonInteractive -Command . 'FILE'`.
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
from mlyard.agent.warm import MAX_SCRIPT_BYTES, imports_any
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
    fail_on_stderr: bool = False, label: str = "Bash", writable: list[Path] | None = None, python: bool = False,
) -> str:  # fmt: skip
    """Run a step's process and turn its end into a result (exit code, failOnStderr); `python`: it runs
    Python (a warm sandbox may serve it, mlyard.agent.warm)."""
    job.log.write(step, "========================== Starting Command Output ===========================")
    job.log.write(step, "[command]" + shlex.join(argv))
    timeout = step.timeout_in_minutes * job.minute if step.timeout_in_minutes > 0 else None
    end = run_process(argv, cwd=cwd, env=env, job=job, run=run, timeout_seconds=timeout, split_stderr=fail_on_stderr,
                      writable=writable or [], python=python)  # fmt: skip
    if end.exit_code != 0:
        run.error(f"{label} exited with code '{end.exit_code}'.")
        return FAILED
    if fail_on_stderr and end.stderr_lines:
        run.error(f"{label} wrote one or more lines to the standard error stream (failOnStderr is true).")
        return FAILED
    return SUCCEEDED


def _warm(job: JobState, text: str, cwd: Path) -> bool:
    """Whether a script step's Python would use a warm sandbox (mlyard.agent.warm)."""
    return job.warm is not None and job.warm.serves(text, cwd)


def _bash_inline(job: JobState, step: StepSpec, run: StepRun, script: str, extra: dict[str, str] | None = None,
                 *, arguments: str = "", fail_on_stderr_input: str = "failOnStderr") -> str:  # fmt: skip
    text = expand(job, script)
    path = write_script(job, step, text, ".sh")
    argv = [bash_path(), "--noprofile", "--norc", *INLINE_FLAGS, str(path), *shlex.split(arguments)]
    env = step_environment(job, step, extra)
    fail = input_flag(job, step, fail_on_stderr_input)
    cwd = working_directory(job, step)
    return run_command(job, step, run, argv, cwd=cwd, env=env, fail_on_stderr=fail,
                       writable=store_paths(extra or {}), python=_warm(job, text, cwd))  # fmt: skip


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
    cwd = working_directory(job, step)
    text = path.read_text(errors="replace")[:MAX_SCRIPT_BYTES] if job.warm is not None else ""
    return run_command(job, step, run, argv, cwd=cwd, env=env, fail_on_stderr=fail,
                       writable=store_paths(extra or {}), python=_warm(job, text, cwd))  # fmt: skip


PWSH_MISSING = "pwsh is not installed on this agent: install PowerShell 7 or use a bash step"
# The preference variables and PowerShell@2's defaults for them.
_PREFERENCES = {"errorAction": "stop", "progress": "silentlyContinue"} | dict.fromkeys(
    ("warning", "information", "verbose", "debug"), "default"
)
_EXIT_CODE = "if ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }"


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def powershell(step: StepSpec, job: JobState, run: StepRun) -> str:
    """PowerShell@2 (`pwsh:` and `powershell:` steps) with pwsh; a clear failure when it is not installed."""
    env = step_environment(job, step)
    pwsh = shutil.which("pwsh", path=env.get("PATH"))
    if pwsh is None:
        raise StepError(PWSH_MISSING)
    lines = []
    for name, default in _PREFERENCES.items():
        value = step_input(job, step, f"{name}Preference", default).strip()
        if value.lower() != "default":
            lines.append(f"${name[0].upper()}{name[1:]}Preference = {_ps_quote(value[0].upper() + value[1:])}")
    if step_input(job, step, "targetType", "filePath").lower() == "inline":
        lines.append(expand(job, step.inputs.get("script")))
    else:
        path = resolve_path(job, step_input(job, step, "filePath"))
        if not path.is_file():
            raise StepError(f"the script file does not exist: {path}")
        lines.append(f". {_ps_quote(str(path))} {step_input(job, step, 'arguments')}".rstrip())
    if not input_flag(job, step, "ignoreLASTEXITCODE"):
        lines.append(_EXIT_CODE)
    path = write_script(job, step, "\n".join(lines), ".ps1")
    argv = [pwsh, "-NoLogo", "-NoProfile", "-NonInteractive", "-Command", f". {_ps_quote(str(path))}"]
    fail = input_flag(job, step, "failOnStderr")
    return run_command(job, step, run, argv, cwd=working_directory(job, step), env=env, fail_on_stderr=fail,
                       label="PowerShell")  # fmt: skip


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
    warm = job.warm is not None and imports_any(path, job.warm.modules)
    return run_command(job, step, run, argv, cwd=cwd, env=env, fail_on_stderr=fail, label="Python", python=warm)


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
