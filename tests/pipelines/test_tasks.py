"""Tasks (issue 11, bug 9 and "Tasks"): every task of Microsoft's schema validates with its real inputs;
a valid task mlyard does not run is an "unsupported" notice, not an error.

Sources: Microsoft's Azure Pipelines schema (azure-pipelines-vscode `service-schema.json`, kept as
src/mlyard/pipelines/data/tasks.json) and the task reference pages ("PublishPipelineArtifact@1",
"Docker@2", "PublishTestResults@2", "CopyFiles@2", "DownloadSecureFile@1").
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlyard.cli.main import app
from mlyard.pipelines import PipelineError, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.tasks import _NATIVE, DATA_FILE, RUNNABLE_TASKS, _catalogue, find_task

REPO = Path(__file__).parents[2]
SCHEMA = REPO / "../shared/azure-pipelines/service-schema.json"
runner = CliRunner()

DOCKER_MESSAGE = (
    "task Docker@2 is valid Azure Pipelines but mlyard does not run it: a run fails at this step; use a script "
    "step or a task mlyard runs: ArchiveFiles@2, AzureCLI@1, AzureCLI@2, Bash@3, CmdLine@2, CopyFiles@2, "
    "DeleteFiles@1, DownloadBuildArtifacts@1, DownloadPipelineArtifact@2, ExtractFiles@1, PowerShell@2, "
    "PublishBuildArtifacts@1, "
    "PublishCodeCoverageResults@1, PublishCodeCoverageResults@2, PublishPipelineArtifact@1, PublishTestResults@2, "
    "PythonScript@0, UsePythonVersion@0"
)
DOCKER = """\
steps:
- script: echo build
- task: Docker@2
  inputs:
    command: build
    Dockerfile: Dockerfile
- script: echo after
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        compile_pipeline(load_pipeline(text, name="p.yml"))
    return [str(diagnostic) for diagnostic in caught.value.diagnostics]


def test_bug9_publish_pipeline_artifact_takes_its_real_inputs() -> None:
    pipeline = load_pipeline(
        """\
steps:
- task: PublishPipelineArtifact@1
  inputs:
    targetPath: dist
    artifact: dist
    properties: '{"origin": "ci"}'
    fileSharePath: '\\\\server\\drops'
    parallel: true
    parallelCount: 8
"""
    )
    step = compile_pipeline(pipeline).jobs[0].steps[0]
    assert step.inputs["properties"] == '{"origin": "ci"}'
    assert (step.inputs["parallel"], step.inputs["parallelCount"]) == ("true", "8")
    assert step.unsupported is None  # publishLocation stays "pipeline": mlyard runs it


def test_a_typo_in_an_input_is_an_error_naming_the_known_inputs() -> None:
    text = "steps:\n- task: PublishPipelineArtifact@1\n  inputs:\n    targetPth: dist\n"
    assert problems(text) == [
        "p.yml:4:5: steps[0].inputs.targetPth: unknown input 'targetPth' for task PublishPipelineArtifact@1; "
        "supported inputs: artifact, fileSharePath, parallel, parallelCount, properties, publishLocation, targetPath"
    ]


def test_a_task_mlyard_does_not_run_is_valid_and_unsupported() -> None:
    pipeline = load_pipeline(DOCKER, name="p.yml")
    plan = compile_pipeline(pipeline)
    steps = plan.jobs[0].steps
    assert [(step.task, step.unsupported) for step in steps] == [
        ("CmdLine@2", None), ("Docker@2", DOCKER_MESSAGE), ("CmdLine@2", None),
    ]  # fmt: skip
    assert steps[1].inputs == {"command": "build", "Dockerfile": "Dockerfile"}
    assert [str(notice) for notice in plan.unsupported] == [f"p.yml:3:3: steps[1].task: {DOCKER_MESSAGE}"]
    assert [str(notice) for notice in pipeline.unsupported] == [f"p.yml:3:3: steps[1].task: {DOCKER_MESSAGE}"]
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_schema_tasks_are_checked_case_insensitively_with_aliases_enums_and_required_inputs() -> None:
    plan = compile_pipeline(load_pipeline("steps:\n- task: docker@2\n  inputs:\n    COMMAND: push\n"))
    assert (plan.jobs[0].steps[0].task, dict(plan.jobs[0].steps[0].inputs)) == ("Docker@2", {"command": "push"})
    text = """\
steps:
- task: Docker@2
  inputs:
    command: frobnicate
- task: HelmDeploy@0  # the schema says its ACR inputs are required: only when visible, which it cannot tell
  inputs:
    command: upgrade
- task: CopyFiles@2
  inputs:
    Contents: '*.whl'
"""
    assert problems(text) == [
        "p.yml:4:5: steps[0].inputs.command: 'frobnicate' is not allowed; allowed values: buildAndPush, build, push, "
        "login, logout, start, stop",
        "p.yml:8:3: steps[2].task: task CopyFiles@2: input 'TargetFolder' is required",
    ]


def test_unknown_tasks_are_errors_with_the_nearest_known_ones() -> None:
    assert problems("steps:\n- task: Bash@9\n- task: CopyFile@2\n- task: 'Not a task'\n") == [
        "p.yml:2:3: steps[0].task: unknown task 'Bash@9': no such version; known versions: Bash@3",
        "p.yml:3:3: steps[1].task: unknown task 'CopyFile@2': not a built-in Azure Pipelines task; "
        "did you mean CopyFiles@2, CopyFiles@1?",
        "p.yml:4:3: steps[2].task: unknown task 'Not a task': not a built-in Azure Pipelines task",
    ]


def test_a_task_of_an_extension_named_without_its_publisher_is_unsupported_not_invalid() -> None:
    """Real pipelines name extension tasks short (`SonarCloudPrepare@1`, `TerraformInstaller@1`): Azure runs
    them where the extension is installed, so they are notices; a near miss of a built-in one stays an error."""
    plan = compile_pipeline(load_pipeline("steps:\n- task: TerraformInstaller@1\n", name="p.yml"))
    message = (
        "task 'TerraformInstaller@1' is not a built-in Azure Pipelines task (a Marketplace extension's?): "
        "mlyard cannot check or run it"
    )
    assert plan.jobs[0].steps[0].unsupported == message
    assert [str(notice) for notice in plan.unsupported] == [f"p.yml:2:3: steps[0].task: {message}"]


def test_a_marketplace_extension_task_is_unsupported_not_invalid() -> None:
    text = "steps:\n- task: SonarSource.sonarcloud.SonarCloudPrepare@1\n  inputs:\n    SonarCloud: sc\n"
    plan = compile_pipeline(load_pipeline(text, name="p.yml"))
    step = plan.jobs[0].steps[0]
    message = (
        "task 'SonarSource.sonarcloud.SonarCloudPrepare@1' comes from a Marketplace extension: "
        "mlyard cannot check or run it"
    )
    assert (step.name, step.inputs, step.unsupported) == ("SonarCloudPrepare", {"SonarCloud": "sc"}, message)
    assert [str(notice) for notice in plan.unsupported] == [f"p.yml:2:3: steps[0].task: {message}"]


def test_a_value_mlyard_does_not_run_is_unsupported_and_the_runnable_ones_are_not() -> None:
    text = """\
steps:
- task: PublishTestResults@2
  inputs:
    testResultsFormat: CTest
- task: PublishTestResults@2
  inputs:
    testRunner: nunit
- task: PublishTestResults@2
  inputs:
    testResultsFormat: $(format)
"""
    steps = compile_pipeline(load_pipeline(text)).jobs[0].steps
    assert steps[0].unsupported == (
        "task PublishTestResults@2 with testResultsFormat 'CTest' is valid Azure Pipelines but mlyard does not run it "
        "(it runs testResultsFormat JUnit, NUnit, VSTest, XUnit): a run fails at this step"
    )
    assert (steps[1].inputs["testResultsFormat"], steps[1].unsupported) == ("nunit", None)
    assert steps[2].unsupported is None  # known only when the job runs


def test_tasks_in_a_never_taken_branch_are_not_reported_unsupported() -> None:
    text = "parameters:\n- name: docker\n  type: boolean\n  default: false\nsteps:\n- script: echo\n"
    text += "- ${{ if parameters.docker }}:\n  - task: Docker@2\n"
    assert compile_pipeline(load_pipeline(text)).unsupported == ()


def test_runnable_tasks_are_the_hand_written_specs_and_exist_in_the_schema_or_docs() -> None:
    assert len(RUNNABLE_TASKS) == 18
    for name in RUNNABLE_TASKS:
        spec = find_task(name.upper())
        assert spec is not None and spec.name == name and spec.runnable
    # Every hand-written input and alias is one of the schema's (noProfile/noRc: Bash@3 options the
    # schema does not list; PublishCodeCoverageResults@2 is newer than the schema).
    allowed = {("Bash@3", "noProfile"), ("Bash@3", "noRc")}
    for name, native in _NATIVE.items():
        entry = _catalogue().get(name.lower(), (name, {}))[1]
        known = {spelling.lower() for spelling in [*entry.get("inputs", ()), *entry.get("aliases", {})]}
        for spelling in [*native.defaults, *native.aliases]:
            assert not entry or spelling.lower() in known or (name, spelling) in allowed, (name, spelling)


def test_the_agent_runs_exactly_the_runnable_tasks() -> None:
    from mlyard.agent.steps import TASK_HANDLERS

    assert set(TASK_HANDLERS) == {name.lower() for name in RUNNABLE_TASKS}  # one vocabulary: validate = run


def test_validate_json_lists_errors_and_unsupported_apart(tmp_path: Path) -> None:
    valid = tmp_path / "docker.yml"
    valid.write_text(DOCKER, encoding="utf-8")
    broken = tmp_path / "typo.yml"
    broken.write_text("steps:\n- task: Docker@2\n  inputs:\n    comand: build\n", encoding="utf-8")
    result = runner.invoke(app, ["pipelines", "validate", "--json", str(valid), str(broken)])
    assert result.exit_code == 1
    files = json.loads(result.stdout)["files"]
    assert files[0]["valid"] is True and files[0]["errors"] == []
    assert files[0]["unsupported"] == [
        {"file": str(valid), "line": 3, "column": 3, "path": "steps[1].task", "message": DOCKER_MESSAGE}
    ]
    assert files[1]["valid"] is False and files[1]["unsupported"] == []
    assert files[1]["errors"][0]["message"].startswith("unknown input 'comand' for task Docker@2; supported inputs:")


def test_validate_prints_unsupported_and_exits_0(tmp_path: Path) -> None:
    valid = tmp_path / "docker.yml"
    valid.write_text(DOCKER, encoding="utf-8")
    result = runner.invoke(app, ["pipelines", "validate", str(valid)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{valid}: valid\n"
    assert f"unsupported: {valid}:3:3: steps[1].task: {DOCKER_MESSAGE}\n" in result.stderr


def test_the_task_data_ships_in_the_package_with_its_licence() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mlyard"]
    package = REPO / "src" / "mlyard"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    licence = DATA_FILE.with_name("LICENSE-azure-pipelines-schema")
    assert {DATA_FILE, licence} <= shipped
    assert "Copyright (c) Microsoft Corporation" in licence.read_text(encoding="utf-8")


def test_the_task_data_is_what_the_generator_makes_of_the_schema() -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()} (../shared/azure-pipelines next to the repo)")
    from scripts.task_data import render

    assert DATA_FILE.read_text(encoding="utf-8") == render(json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_importing_the_pipeline_language_does_not_read_the_task_data() -> None:
    import subprocess
    import sys

    code = "import mlyard.pipelines, mlyard.pipelines.tasks as t; print(t._catalogue.cache_info().currsize)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "0"


def test_the_docs_table_of_runnable_tasks_matches_the_code() -> None:
    import re

    docs = (REPO / "docs" / "pipelines.md").read_text(encoding="utf-8")
    section = docs.split("### Tasks", 1)[1].split("\n## ", 1)[0]
    table = section.split("| Task | Notes |", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"`([A-Za-z]+@\d+)`", table)) == sorted(RUNNABLE_TASKS)
