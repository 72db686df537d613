"""The seam, end to end: a pipeline pushed to the server runs the file, archive, test result, coverage
and build artifact tasks on a local agent; `mlyard runs show` shows the tests and the coverage."""

from __future__ import annotations

import json

import pytest

from tests.agent.conftest import DATA
from tests.ci.helpers import logs, make_repo, register, run, wait_state
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow

PIPELINE = """trigger: none
stages:
- stage: build
  jobs:
  - job: test
    steps:
    - bash: |
        mkdir -p reports out
        cp nunit3.xml reports/ && cp coverage.xml reports/
        echo model > out/model.txt
    - task: CopyFiles@2
      inputs:
        sourceFolder: out
        targetFolder: $(Build.ArtifactStagingDirectory)/model
    - task: ArchiveFiles@2
      inputs:
        rootFolderOrFile: $(Build.ArtifactStagingDirectory)/model
        archiveType: tar
        archiveFile: $(Build.ArtifactStagingDirectory)/model.tar.gz
    - task: DeleteFiles@1
      inputs:
        sourceFolder: $(Build.ArtifactStagingDirectory)
        contents: model
    - task: PublishTestResults@2
      inputs:
        testRunner: NUnit
        testResultsFiles: reports/nunit3.xml
    - task: PublishCodeCoverageResults@2
      inputs:
        summaryFileLocation: $(System.DefaultWorkingDirectory)/reports/coverage.xml
    - task: PublishBuildArtifacts@1
- stage: use
  jobs:
  - job: unpack
    steps:
    - checkout: none
    - task: DownloadBuildArtifacts@1
      inputs:
        artifactName: drop
    - task: ExtractFiles@1
      inputs:
        archiveFilePatterns: $(System.ArtifactsDirectory)/drop/*.tar.gz
        destinationFolder: $(Build.BinariesDirectory)
    - bash: echo "extracted=$(cat $(Build.BinariesDirectory)/model/model.txt)"
    - task: DownloadBuildArtifacts@1
      inputs:
        downloadType: specific
        downloadPath: $(Agent.TempDirectory)/all
    - bash: echo "listed=$(ls $(Agent.TempDirectory)/all/drop)"
"""


def test_a_pipeline_runs_the_tasks_and_shows_tests_and_coverage(server: Server, git: Git) -> None:
    files = {
        "ci.yml": PIPELINE,
        "nunit3.xml": (DATA / "testresults" / "nunit3.xml").read_text(),
        "coverage.xml": (DATA / "coverage" / "coverage.xml").read_text(),
    }
    make_repo(server, git, "agent-tasks", files)
    register(server, "agent-tasks", "agent-tasks", "ci.yml")
    done = wait_state(server, run(server, "agent-tasks")["id"], timeout=120)
    text = logs(server, done["id"])
    assert done["state"] == "succeeded", text
    assert "extracted=model" in text and "listed=model.tar.gz" in text
    shown = json.loads(server.cli("runs", "show", str(done["id"]), "--json").stdout)
    assert (shown["tests"]["total"], shown["tests"]["failed"]) == (4, 1)
    assert (shown["coverage"]["lines_covered"], shown["coverage"]["lines_valid"]) == (8, 10)
    assert shown["artifacts"] == ["drop"]
    tree = server.cli("runs", "show", str(done["id"])).stdout
    assert "coverage: lines 80.0% (8/10), branches 50.0% (1/2)" in tree
