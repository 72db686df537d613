"""PublishBuildArtifacts@1 and DownloadBuildArtifacts@1 on artifacts of the current run.

Sources: "PublishBuildArtifacts@1 - Publish build artifacts v1 task" (PathtoPublish default
$(Build.ArtifactStagingDirectory), ArtifactName default drop, publishLocation alias ArtifactType default
Container, MaxArtifactSize default 0) and "DownloadBuildArtifacts@1 - Download build artifacts v1 task"
(buildType default current, downloadType default single, itemPattern default **, downloadPath default
$(System.ArtifactsDirectory), artifacts land in downloadPath/<artifactName>).
"""

from __future__ import annotations

from mlyard.protocol import FAILED, SUCCEEDED
from tests.agent.conftest import Runner, job, script, step

LIST = "find . -type f | sort"


def test_publish_and_download_build_artifacts(run: Runner) -> None:
    recorder = run.recorder()
    first = job(
        script("build", "mkdir -p $(Build.ArtifactStagingDirectory)/bin && echo w > $(Build.ArtifactStagingDirectory)/"
                        "bin/app.whl && echo n > $(Build.ArtifactStagingDirectory)/notes.txt"),
        step("pub", "PublishBuildArtifacts@1", inputs={}),  # all defaults: the staging folder as `drop`
        script("more", "mkdir -p more && echo m > more/m.txt"),
        step("pub2", "PublishBuildArtifacts@1", inputs={"PathtoPublish": "more", "ArtifactName": "more"}),
        step("share", "PublishBuildArtifacts@1", inputs={"ArtifactType": "FilePath", "TargetPath": "//share/x"},
             condition="always()"),
        step("big", "PublishBuildArtifacts@1", inputs={"ArtifactName": "big", "MaxArtifactSize": "3"},
             condition="always()"),
    )  # fmt: skip
    _, rec = run(first, recorder)
    assert rec.result("pub") == SUCCEEDED and rec.uploads == ["drop", "more"]
    assert rec.issues("share") == [("error", "publishLocation 'FilePath' (a file share) is not supported by the "
                                             "mlyard agent; use publishLocation: Container (artifacts are kept by "
                                             "the mlyard server)")]  # fmt: skip
    assert rec.issues("big") == [("error", "the artifact is 4 bytes, more than MaxArtifactSize (3 bytes)")]
    second = job(
        step("all", "DownloadBuildArtifacts@1", inputs={"artifactName": "drop"}),
        script("show", f"cd $(System.ArtifactsDirectory) && {LIST}"),
        step("some", "DownloadBuildArtifacts@1", inputs={"artifactName": "drop", "itemPattern": "drop/**/*.whl",
                                                         "downloadPath": "$(Build.BinariesDirectory)"}),
        script("show2", f"cd $(Build.BinariesDirectory) && {LIST}"),
        step("specific", "DownloadBuildArtifacts@1", inputs={"buildType": "specific", "buildId": "12"}),
        step("every", "DownloadBuildArtifacts@1", inputs={"downloadType": "specific", "downloadPath": "every",
                                                          "itemPattern": "**/*.txt"}, condition="always()"),
        script("show3", f"cd every && {LIST}", condition="always()"),
        step("noname", "DownloadBuildArtifacts@1", inputs={}, condition="always()"),
    )  # fmt: skip
    _, rec = run(second, recorder)
    assert "./drop/bin/app.whl" in rec.logs["show"] and "./drop/notes.txt" in rec.logs["show"]
    assert "./drop/bin/app.whl" in rec.logs["show2"] and "./drop/notes.txt" not in rec.logs["show2"]
    assert rec.result("specific") == FAILED
    assert rec.issues("specific")[0][1].startswith("buildType 'specific' is not supported by the mlyard agent; ")
    assert rec.result("every") == SUCCEEDED
    assert [line for line in rec.logs["show3"] if line.startswith("./")] == ["./drop/notes.txt", "./more/m.txt"]
    assert rec.issues("noname") == [("error", "input artifactName is required with downloadType single: name the "
                                              "artifact to download")]  # fmt: skip
