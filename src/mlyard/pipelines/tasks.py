"""The tasks mlyard supports (`- task: Name@N`): their inputs, aliases, defaults and required inputs.

Task names and input names are matched case-insensitively, as Azure Pipelines does, and normalised to
the spelling below. Defaults follow the task reference pages of the Azure Pipelines docs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    """One supported task: its inputs (name -> default, None when there is none) and rules."""

    name: str
    inputs: Mapping[str, Any]
    aliases: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    required: Callable[[Mapping[str, Any]], list[str]] = lambda inputs: []

    def canonical_input(self, name: str) -> str | None:
        """The canonical spelling of an input name or alias (case-insensitive), None when unknown."""
        lowered = name.lower()
        for known in self.inputs:
            if known.lower() == lowered:
                return known
        for alias, target in self.aliases.items():
            if alias.lower() == lowered:
                return target
        return None


def _when(selector: str, default: str, rules: Mapping[str, str]) -> Callable[[Mapping[str, Any]], list[str]]:
    """Required inputs depending on a selector input: the message names the selector and its value."""

    def required(inputs: Mapping[str, Any]) -> list[str]:
        value = inputs.get(selector, default)
        if isinstance(value, str) and ("${{" in value or "$(" in value or "$[" in value):
            return []
        needed = rules.get(str(value))
        if needed and inputs.get(needed) in (None, ""):
            return [f"input '{needed}' is required when {selector} is {value}"]
        return []

    return required


def _always(*names: str) -> Callable[[Mapping[str, Any]], list[str]]:
    def required(inputs: Mapping[str, Any]) -> list[str]:
        return [f"input '{name}' is required" for name in names if inputs.get(name) in (None, "")]

    return required


def _all(*rules: Callable[[Mapping[str, Any]], list[str]]) -> Callable[[Mapping[str, Any]], list[str]]:
    return lambda inputs: [problem for rule in rules for problem in rule(inputs)]


_SCRIPT_COMMON = {"workingDirectory": None, "failOnStderr": False}
PREFERENCES = ("default", "stop", "continue", "silentlyContinue")  # PowerShell@2's preference variables

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("CmdLine@2", {"script": None, **_SCRIPT_COMMON}, required=_always("script")),
        TaskSpec(
            "Bash@3",
            {"targetType": "filePath", "filePath": None, "arguments": None, "script": None, **_SCRIPT_COMMON}
            | {"bashEnvValue": None, "noProfile": True, "noRc": True},
            choices={"targetType": ("filePath", "inline")},
            required=_when("targetType", "filePath", {"filePath": "filePath", "inline": "script"}),
        ),
        TaskSpec(
            "PythonScript@0",
            {"scriptSource": "filePath", "scriptPath": None, "script": None, "arguments": None}
            | {"pythonInterpreter": None, **_SCRIPT_COMMON},
            choices={"scriptSource": ("filePath", "inline")},
            required=_when("scriptSource", "filePath", {"filePath": "scriptPath", "inline": "script"}),
        ),
        TaskSpec(
            "AzureCLI@2",
            {"azureSubscription": None, "scriptType": None, "scriptLocation": "scriptPath", "scriptPath": None}
            | {"inlineScript": None, "arguments": None, "workingDirectory": None, "failOnStandardError": False}
            | {"addSpnToEnvironment": False, "useGlobalConfig": False, "visibleAzLogin": True},
            aliases={"connectedServiceNameARM": "azureSubscription", "scriptArguments": "arguments"},
            choices={"scriptType": ("ps", "pscore", "batch", "bash"), "scriptLocation": ("inlineScript", "scriptPath")},
            required=_all(
                _always("azureSubscription", "scriptType"),
                _when("scriptLocation", "scriptPath", {"scriptPath": "scriptPath", "inlineScript": "inlineScript"}),
            ),
        ),
        TaskSpec(
            "PublishTestResults@2",
            {"testResultsFormat": "JUnit", "testResultsFiles": "**/TEST-*.xml", "searchFolder": None}
            | {"mergeTestResults": False, "failTaskOnFailedTests": False, "testRunTitle": None}
            | {"failTaskOnFailureToPublishResults": False, "failTaskOnMissingResultsFile": False}
            | {"buildPlatform": None, "buildConfiguration": None, "publishRunAttachments": True},
            aliases={
                "testRunner": "testResultsFormat",
                "platform": "buildPlatform",
                "configuration": "buildConfiguration",
            },
            choices={"testResultsFormat": ("JUnit",)},
        ),
        TaskSpec(
            "PublishPipelineArtifact@1",
            {"targetPath": "$(Pipeline.Workspace)", "artifact": None, "publishLocation": "pipeline"},
            aliases={"path": "targetPath", "artifactName": "artifact", "artifactType": "publishLocation"},
            choices={"publishLocation": ("pipeline",)},
        ),
        TaskSpec(
            "DownloadPipelineArtifact@2",
            {"buildType": "current", "artifact": None, "patterns": "**", "path": "$(Pipeline.Workspace)"},
            aliases={"source": "buildType", "artifactName": "artifact", "itemPattern": "patterns"}
            | {"targetPath": "path", "downloadPath": "path"},
            choices={"buildType": ("current",)},
        ),
        TaskSpec(
            "PowerShell@2",  # `pwsh:` and `powershell:` steps; runs with pwsh (PowerShell 7) on Linux and macOS
            {"targetType": "filePath", "filePath": None, "arguments": None, "script": None}
            | {"errorActionPreference": "stop", "warningPreference": "default", "informationPreference": "default"}
            | {"verbosePreference": "default", "debugPreference": "default", "progressPreference": "silentlyContinue"}
            | {"failOnStderr": False, "showWarnings": False, "ignoreLASTEXITCODE": False, "pwsh": False}
            | {"workingDirectory": None, "runScriptInSeparateScope": False},
            choices={"targetType": ("filePath", "inline")}
            | {name: PREFERENCES for name in ("errorActionPreference", "warningPreference")}
            | {name: PREFERENCES for name in ("informationPreference", "verbosePreference")}
            | {name: PREFERENCES for name in ("debugPreference", "progressPreference")},
            required=_when("targetType", "filePath", {"filePath": "filePath", "inline": "script"}),
        ),
        TaskSpec(
            "UsePythonVersion@0",
            {"versionSpec": "3.x", "disableDownloadFromRegistry": False, "allowUnstable": False}
            | {"addToPath": True, "architecture": "x64", "githubToken": None},
        ),
    )
}

SUPPORTED_TASKS = ", ".join(sorted(TASKS, key=str.lower))


_BY_LOWER = {name.lower(): spec for name, spec in TASKS.items()}


def find_task(name: str) -> TaskSpec | None:
    """The spec of a task reference such as ``bash@3`` (case-insensitive), None when unsupported."""
    return _BY_LOWER.get(name.strip().lower())
