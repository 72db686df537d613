"""One module per step kind behind one factory: :func:`handler_for` maps a step to the function that
runs it. A handler returns the step's result, or raises StepError (the step fails with its message) or
Interrupted (a timeout or cancel stopped it)."""

from __future__ import annotations

from collections.abc import Callable

from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.agent.steps.archives import archive_files, extract_files
from mlyard.agent.steps.artifacts import download, download_build_artifacts, publish, publish_build_artifacts
from mlyard.agent.steps.checkout import checkout
from mlyard.agent.steps.coverage import publish_code_coverage
from mlyard.agent.steps.files import copy_files, delete_files
from mlyard.agent.steps.python import use_python_version
from mlyard.agent.steps.scripts import azure_cli, bash, cmdline, powershell, python_script
from mlyard.agent.steps.testresults import publish_test_results
from mlyard.protocol import StepSpec

Handler = Callable[[StepSpec, JobState, StepRun], str]

TASK_HANDLERS: dict[str, Handler] = {
    "cmdline@2": cmdline,
    "bash@3": bash,
    "pythonscript@0": python_script,
    "powershell@2": powershell,
    "azurecli@2": azure_cli,
    "azurecli@1": azure_cli,
    "publishtestresults@2": publish_test_results,
    "publishpipelineartifact@1": publish,
    "downloadpipelineartifact@2": download,
    "usepythonversion@0": use_python_version,
    "copyfiles@2": copy_files,
    "deletefiles@1": delete_files,
    "archivefiles@2": archive_files,
    "extractfiles@1": extract_files,
    "publishcodecoverageresults@1": publish_code_coverage,
    "publishcodecoverageresults@2": publish_code_coverage,
    "publishbuildartifacts@1": publish_build_artifacts,
    "downloadbuildartifacts@1": download_build_artifacts,
}


def handler_for(step: StepSpec) -> Handler:
    if step.kind == "checkout":
        return checkout
    handler = TASK_HANDLERS.get((step.task or "").lower())
    if handler is None:
        supported = ", ".join(sorted(TASK_HANDLERS))
        raise StepError(f"task '{step.task}' is not supported by the mlyard agent (supported: {supported})")
    return handler
