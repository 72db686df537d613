"""`pwsh:` and `powershell:` steps validate and compile to PowerShell@2 (issue 11).

Sources: "steps.pwsh definition" and "steps.powershell definition" (keys errorActionPreference,
failOnStderr, ignoreLASTEXITCODE, workingDirectory; the step is a shortcut for PowerShell@2 with an
inline script, `pwsh: true` for the first), "PowerShell@2 - PowerShell v2 task" (inputs and defaults).
"""

from __future__ import annotations

import pytest

from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
from mlyard.pipelines.plan import Plan

PIPELINE = """\
steps:
- pwsh: Write-Host "Hello from PowerShell 7"
  displayName: Hello
  errorActionPreference: continue
  ignoreLASTEXITCODE: true
  failOnStderr: true
  workingDirectory: $(Build.SourcesDirectory)/src
  env: {NAME: value}
- powershell: |
    Get-ChildItem -Recurse
    exit 0
- task: PowerShell@2
  inputs:
    targetType: inline
    script: Write-Host task
    pwsh: true
"""


def compiled(text: str) -> Plan:
    return compile_pipeline(load_pipeline(text, name="ps.yml"))


def test_pwsh_and_powershell_steps_compile_to_powershell_2() -> None:
    steps = compiled(PIPELINE).stages[0].jobs[0].steps
    assert [(step.name, step.kind, step.task) for step in steps] == [
        ("PowerShell", "pwsh", "PowerShell@2"),
        ("PowerShell2", "powershell", "PowerShell@2"),
        ("PowerShell3", "task", "PowerShell@2"),
    ]
    pwsh, powershell, task = steps
    assert pwsh.display_name == "Hello" and pwsh.env == {"NAME": "value"}
    assert {key: pwsh.inputs[key] for key in ("targetType", "script", "pwsh", "errorActionPreference")} == {
        "targetType": "inline", "script": 'Write-Host "Hello from PowerShell 7"', "pwsh": "true",
        "errorActionPreference": "continue",
    }  # fmt: skip
    assert (pwsh.inputs["ignoreLASTEXITCODE"], pwsh.inputs["failOnStderr"]) == ("true", "true")
    assert pwsh.inputs["workingDirectory"] == "$(Build.SourcesDirectory)/src"
    # `powershell:` is Windows PowerShell on Windows agents (pwsh: false); the defaults of the task apply
    assert powershell.inputs["pwsh"] == "false"
    assert (powershell.inputs["errorActionPreference"], powershell.inputs["ignoreLASTEXITCODE"]) == ("stop", "false")
    assert powershell.script == "Get-ChildItem -Recurse\nexit 0\n"
    assert task.inputs["pwsh"] == "true" and task.inputs["progressPreference"] == "silentlyContinue"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "- pwsh: x\n  errorActionPreference: explode\n",
            "ps.yml:3:3: steps[0].errorActionPreference: 'explode' is not allowed; "
            "allowed values: default, stop, continue, silentlyContinue",
        ),
        (
            "- powershell: x\n  ignoreLASTEXITCODE: maybe\n",
            "ps.yml:3:3: steps[0].ignoreLASTEXITCODE: expected a boolean (true or false), got 'maybe'",
        ),
        (
            "- pwsh: x\n  arguments: -Verbose\n",
            "ps.yml:3:3: steps[0].arguments: unknown key 'arguments'; supported keys: condition, continueOnError, "
            "displayName, enabled, env, errorActionPreference, failOnStderr, ignoreLASTEXITCODE, name, pwsh, "
            "retryCountOnTaskFailure, timeoutInMinutes, workingDirectory",
        ),
        (
            "- task: PowerShell@2\n  inputs: {targetType: inline}\n",
            "ps.yml:2:3: steps[0].task: task PowerShell@2: input 'script' is required when targetType is inline",
        ),
    ],
)
def test_bad_powershell_steps_are_reported_where_they_are(step: str, message: str) -> None:
    with pytest.raises(PipelineError) as caught:
        compiled("steps:\n" + step)
    assert [str(d) for d in caught.value.diagnostics] == [message]


def test_case_insensitive_preference_values_and_expressions_are_accepted() -> None:
    text = """\
parameters:
- name: preference
  default: SilentlyContinue
steps:
- pwsh: x
  errorActionPreference: ${{ parameters.preference }}
- pwsh: y
  errorActionPreference: $(preference)
"""
    first, second = compiled(text).stages[0].jobs[0].steps
    assert first.inputs["errorActionPreference"] == "SilentlyContinue"
    assert second.inputs["errorActionPreference"] == "$(preference)"
