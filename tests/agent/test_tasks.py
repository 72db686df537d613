"""Tasks: PublishTestResults@2 (JUnit), PublishPipelineArtifact@1 / DownloadPipelineArtifact@2,
AzureCLI@2, PythonScript@0 and UsePythonVersion@0.

Sources: the task reference pages "PublishTestResults@2 - Publish Test Results v2 task",
"PublishPipelineArtifact@1", "DownloadPipelineArtifact@2", "steps.publish", "steps.download",
"AzureCLI@2 - Azure CLI v2 task", "PythonScript@0 - Python script v0 task", "UsePythonVersion@0".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlyard.agent.junit import JUnitError, summarize
from mlyard.agent.steps.python import version_matches
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES, Connection
from tests.agent.conftest import DATA, Runner, job, script, step

JUNIT = DATA / "junit"


def _copy_reports(*names: str) -> str:
    """A script writing the reports into the job's work directory (the step's sandbox does not show the
    checkout of these tests: it may lie in /tmp, which is private to the step)."""
    files = [f"cat > reports/{name} <<'REPORT'\n{(JUNIT / name).read_text()}\nREPORT" for name in names]
    return "mkdir -p reports\n" + "\n".join(files)


def test_junit_summary_counts_and_failures() -> None:
    summary = summarize([JUNIT / "TEST-pytest.xml", JUNIT / "TEST-single-suite.xml"], "title").to_dict()
    assert {key: summary[key] for key in ("title", "total", "passed", "failed", "skipped")} == {
        "title": "title", "total": 7, "passed": 3, "failed": 3, "skipped": 1,
    }  # fmt: skip
    assert summary["duration_seconds"] == pytest.approx(1.35)
    assert summary["failures"] == [
        {"name": "test_accuracy", "classname": "tests.test_model", "message": "AssertionError: assert 0.71 >= 0.8"},
        {"name": "test_download", "classname": "tests.test_data", "message": "ConnectionError: offline"},
        {"name": "divides", "classname": "Calc", "message": "division by zero"},
    ]


def test_junit_unreadable_file() -> None:
    with pytest.raises(JUnitError, match=r"broken.xml: not a readable JUnit XML file: "):
        summarize([JUNIT / "broken.xml"], "t")


def test_publish_test_results_task(run: Runner) -> None:
    spec = job(
        script("prepare", _copy_reports("TEST-pytest.xml", "TEST-single-suite.xml")),
        step("publish", "PublishTestResults@2", inputs={"testResultsFiles": "**/TEST-*.xml", "testRunTitle": "unit"}),
        step("strict", "PublishTestResults@2", inputs={"testResultsFiles": "reports/TEST-pytest.xml",
                                                      "failTaskOnFailedTests": "true"}),
        step("none", "PublishTestResults@2", inputs={"testResultsFiles": "**/nothing-*.xml"}, condition="always()"),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("publish") == SUCCEEDED
    first = rec.tests[0]
    assert (first["title"], first["total"], first["passed"], first["failed"], first["skipped"]) == ("unit", 7, 3, 3, 1)
    assert [Path(name).name for name in first["files"]] == ["TEST-pytest.xml", "TEST-single-suite.xml"]
    assert rec.tests[1]["title"] == "JUnit_TestResults_42"
    assert rec.result("strict") == FAILED
    assert rec.issues("strict") == [("error", "2 test(s) failed (failTaskOnFailedTests is true)")]
    assert rec.result("none") == SUCCEEDED_WITH_ISSUES
    ((kind, message),) = rec.issues("none")
    assert kind == "warning" and message.startswith("no test result files matched '**/nothing-*.xml' in ")


def test_publish_test_results_rejects_other_formats(run: Runner) -> None:
    _, rec = run(job(step("t", "PublishTestResults@2", inputs={"testResultsFormat": "CTest"})))
    assert rec.issues("t") == [
        ("error", "testResultsFormat 'CTest' is not supported by the mlyard agent; use JUnit, NUnit, VSTest, XUnit")
    ]


def test_publish_and_download_artifacts(run: Runner) -> None:
    first = job(
        script("build", "mkdir -p out/sub && echo model > out/model.txt && echo x > out/sub/x.txt"),
        step("pub", "PublishPipelineArtifact@1", inputs={"targetPath": "out", "artifact": "model"}),
        step("pubfile", "PublishPipelineArtifact@1", inputs={"targetPath": "out/model.txt"}),
        step("missing", "PublishPipelineArtifact@1", inputs={"targetPath": "nope", "artifact": "x"}),
    )
    recorder = run.recorder()
    _, rec = run(first, recorder)
    assert rec.uploads == ["model", "Build_compile_pubfile"]
    assert (rec.store / "model" / "sub" / "x.txt").read_text() == "x\n"
    assert rec.issues("missing")[0][1].startswith("the path to publish does not exist: ")
    second = job(
        step("dl", "DownloadPipelineArtifact@2", kind="download",
             inputs={"buildType": "current", "artifact": "model", "path": "$(Pipeline.Workspace)"}),
        script("show", "cat $(Pipeline.Workspace)/model/model.txt"),
        step("dltask", "DownloadPipelineArtifact@2",
             inputs={"artifact": "model", "path": "$(Build.BinariesDirectory)"}),
        script("show2", "cat $(Build.BinariesDirectory)/sub/x.txt"),
        step("all", "DownloadPipelineArtifact@2", inputs={"path": "$(Pipeline.Workspace)"}),
    )  # fmt: skip
    _, rec = run(second, recorder)
    assert "model" in rec.logs["show"] and "x" in rec.logs["show2"]
    assert rec.issues("all") == [("error", "downloading every artifact of the run is not supported by the mlyard "
                                           "agent; name the artifact to download (artifact: NAME)")]  # fmt: skip


def test_azure_cli_runs_bash_with_the_connection_settings(run: Runner) -> None:
    connection = Connection("dev-conn", "generic", {"DATABRICKS_HOST": "https://dev.example", "API_KEY": "k-98765"},
                            ["API_KEY"])  # fmt: skip
    inputs = {
        "azureSubscription": "dev-conn",
        "scriptType": "bash",
        "scriptLocation": "inlineScript",
        "inlineScript": 'echo "$AZURE_CONNECTION_NAME $DATABRICKS_HOST $API_KEY $1"',
        "arguments": "arg1",
    }
    spec = job(
        step("cli", "AzureCLI@2", inputs=inputs),
        step("ps", "AzureCLI@2", inputs={**inputs, "scriptType": "pscore"}),
        step("other", "AzureCLI@2", inputs={**inputs, "azureSubscription": "prod-conn"}, condition="always()"),
        connections={"dev-conn": connection},
    )  # fmt: skip
    _, rec = run(spec)
    assert "dev-conn https://dev.example *** arg1" in rec.logs["cli"]
    assert rec.issues("ps") == [
        ("error", "scriptType 'pscore' is not supported by the mlyard agent; use scriptType: bash")
    ]
    assert rec.issues("other") == [("error", "service connection 'prod-conn' is not available to this job "
                                             "(available: dev-conn)")]  # fmt: skip


def test_azure_cli_script_file(run: Runner) -> None:
    connection = Connection("c", "generic", {"REGION": "westeurope"})
    spec = job(
        script("write", "printf 'echo region=$REGION arg=$1\\n' > deploy.sh"),
        step("cli", "AzureCLI@2", inputs={"azureSubscription": "c", "scriptType": "bash",
                                          "scriptLocation": "scriptPath", "scriptPath": "deploy.sh", "arguments": "x"}),
        connections={"c": connection},
    )  # fmt: skip
    _, rec = run(spec)
    assert "region=westeurope arg=x" in rec.logs["cli"]


def test_python_script_inline_and_file(run: Runner) -> None:
    spec = job(
        step("inline", "PythonScript@0", inputs={"scriptSource": "inline", "arguments": "--flag 'two words'",
                                                "script": "import sys\nprint(sys.executable, sys.argv[1:])"}),
        script("write", "echo 'raise SystemExit(4)' > fail.py"),
        step("file", "PythonScript@0", inputs={"scriptSource": "filePath", "scriptPath": "fail.py"}),
    )  # fmt: skip
    _, rec = run(spec)
    assert f"{sys.executable} ['--flag', 'two words']" in rec.logs["inline"]
    assert rec.issues("file") == [("error", "Python exited with code '4'.")]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("3.11", True), ("3.x", True), (">= 3.9", True), ("3.11.x", True), (">=3.9 <3.12", True),
     ("3.10 || 3.11", True), ("3.12", False), ("2.7", False), (">3.11", False), ("<3.11", False)],
)  # fmt: skip
def test_python_version_spec(spec: str, expected: bool) -> None:
    assert version_matches(spec, (3, 11, 7)) is expected


def test_use_python_version_task(run: Runner) -> None:
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    spec = job(
        step("ok", "UsePythonVersion@0", inputs={"versionSpec": current}),
        script("where", "echo $PYTHONLOCATION"),
        step("old", "UsePythonVersion@0", inputs={"versionSpec": "2.7"}, condition="always()"),
    )
    _, rec = run(spec)
    assert rec.result("ok") == SUCCEEDED
    assert sys.prefix in rec.logs["where"]
    ((kind, message),) = rec.issues("old")
    assert kind == "error" and message.startswith("Python 2.7 is not installed on this agent (found: ")
    assert message.endswith("); the mlyard agent does not download Python: install it on the agent's machine or "
                            "change versionSpec")  # fmt: skip
    assert ".".join(str(part) for part in sys.version_info[:3]) in message


def test_azure_cli_v1_runs_bash_without_script_type(run: Runner) -> None:
    connection = Connection("c1", "generic", {"REGION": "northeurope"})
    spec = job(
        step("cli", "AzureCLI@1", inputs={"connectedServiceNameARM": "c1", "scriptLocation": "inlineScript",
                                          "inlineScript": 'echo "region=$REGION arg=$1"', "args": "v1"}),
        connections={"c1": connection},
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("cli") == SUCCEEDED, rec.issues("cli")
    assert "region=northeurope arg=v1" in rec.logs["cli"]
