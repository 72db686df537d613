"""PowerShell@2 (`pwsh:` and `powershell:` steps): run with pwsh when it is on PATH, else a clear failure.

Sources: "steps.pwsh definition", "steps.powershell definition" (Windows PowerShell on Windows, pwsh on
Linux and macOS), "PowerShell@2 - PowerShell v2 task" (preference variables, ignoreLASTEXITCODE).
The machine running the tests has no PowerShell: a fake `pwsh` (a shell script) put on PATH shows the
command line and the generated script.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlyard.agent.steps.scripts import PWSH_MISSING
from mlyard.protocol import FAILED, SUCCEEDED
from mlyard.sandbox import Sandbox
from tests.agent.conftest import Runner, job, step

FAKE_PWSH = """#!/bin/sh
# $5 is ". '/path/to/script.ps1'": show the arguments and the script, exit with $FAKE_EXIT
echo "argc=$# 1=$1 2=$2 3=$3 4=$4"
file=$(printf '%s' "$5" | sed "s/^[.] '//; s/'\\$//")
echo "5=. '$file'"
echo "cwd=$(pwd)"
echo "--- script"
cat "$file"
echo "--- end"
exit "${FAKE_EXIT:-0}"
"""


def pwsh_step(name: str, script: str, **inputs: str) -> object:
    fields = {"targetType": "inline", "script": script, "pwsh": "true", "errorActionPreference": "stop"}
    return step(name, "PowerShell@2", kind="pwsh", inputs=fields | inputs)


@pytest.fixture
def without_pwsh(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without the folders holding a pwsh (on a machine that has one)."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(folder for folder in folders if not (Path(folder) / "pwsh").exists()))


@pytest.fixture
def fake_pwsh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    pwsh = bin_dir / "pwsh"
    pwsh.write_text(FAKE_PWSH, encoding="utf-8")
    pwsh.chmod(pwsh.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return pwsh


def test_without_pwsh_the_step_fails_clearly(run: Runner, without_pwsh: None) -> None:
    outcome, rec = run(job(pwsh_step("ps", "Write-Host hello")))
    assert outcome.result == FAILED
    assert rec.issues("ps") == [("error", PWSH_MISSING)]
    assert PWSH_MISSING == "pwsh is not installed on this agent: install PowerShell 7 or use a bash step"


def test_pwsh_runs_the_generated_script_with_azures_command_line(run: Runner, fake_pwsh: Path) -> None:
    spec = job(pwsh_step("ps", "Write-Host '$(Build.BuildId)'", errorActionPreference="continue",
                         progressPreference="silentlyContinue"))  # fmt: skip
    outcome, rec = run(spec, sandbox=Sandbox.none())  # the fake pwsh lives in /tmp, private in the sandbox
    assert outcome.result == SUCCEEDED, rec.all_text()
    lines = rec.logs["ps"]
    command = next(line for line in lines if line.startswith("[command]"))
    assert command.startswith(f"[command]{fake_pwsh} -NoLogo -NoProfile -NonInteractive -Command '. '\"'\"'")
    assert "argc=5 1=-NoLogo 2=-NoProfile 3=-NonInteractive 4=-Command" in lines
    assert any(line.startswith("5=. '") and line.endswith(".ps1'") for line in lines)
    script = lines[lines.index("--- script") + 1 : lines.index("--- end")]
    assert script == [
        "$ErrorActionPreference = 'Continue'",
        "$ProgressPreference = 'SilentlyContinue'",
        "Write-Host '42'",
        "if ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }",
    ]


def test_powershell_step_also_runs_with_pwsh_and_ignores_lastexitcode_when_asked(
    run: Runner, fake_pwsh: Path
) -> None:
    ps = step("ps", "PowerShell@2", kind="powershell",
              inputs={"targetType": "inline", "script": "exit 1", "pwsh": "false", "ignoreLASTEXITCODE": "true",
                      "errorActionPreference": "default"})  # fmt: skip
    outcome, rec = run(job(ps), sandbox=Sandbox.none())
    assert outcome.result == SUCCEEDED
    lines = rec.logs["ps"]
    script = lines[lines.index("--- script") + 1 : lines.index("--- end")]
    assert script == ["$ProgressPreference = 'SilentlyContinue'", "exit 1"]


def test_a_nonzero_exit_fails_the_step(run: Runner, fake_pwsh: Path) -> None:
    ps = step("ps", "PowerShell@2", kind="pwsh", inputs={"targetType": "inline", "script": "exit 3"},
              env={"FAKE_EXIT": "3"})  # fmt: skip
    outcome, rec = run(job(ps), sandbox=Sandbox.none())
    assert outcome.result == FAILED
    assert rec.issues("ps") == [("error", "PowerShell exited with code '3'.")]


def test_file_path_is_dot_sourced_with_its_arguments(run: Runner, fake_pwsh: Path, tmp_path: Path) -> None:
    missing = step("missing", "PowerShell@2", inputs={"targetType": "filePath", "filePath": "no/such.ps1"})
    outcome, rec = run(job(missing), sandbox=Sandbox.none())
    assert outcome.result == FAILED
    (kind, message), = rec.issues("missing")
    assert kind == "error" and message.startswith("the script file does not exist: ") and message.endswith("such.ps1")
    script = tmp_path / "it's.ps1"
    script.write_text("param($Name)\n", encoding="utf-8")
    ps = step("ps", "PowerShell@2", inputs={"targetType": "filePath", "filePath": str(script), "arguments": "-Name x"})
    outcome, rec = run(job(ps), sandbox=Sandbox.none())
    assert outcome.result == SUCCEEDED
    lines = rec.logs["ps"]
    assert lines[lines.index("--- script") + 1 : lines.index("--- end")] == [
        "$ErrorActionPreference = 'Stop'",
        "$ProgressPreference = 'SilentlyContinue'",
        ". '" + str(script).replace("'", "''") + "' -Name x",
        "if ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }",
    ]
