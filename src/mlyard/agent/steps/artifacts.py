"""PublishPipelineArtifact@1 (`publish:`), DownloadPipelineArtifact@2 (`download:`),
PublishBuildArtifacts@1 and DownloadBuildArtifacts@1: artifacts of the current run, moved by the
reporter (the runner uploads / downloads tar.gz archives)."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from mlyard.agent.environment import expand, input_flag, inside_work_dir, resolve_path, step_input
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.agent.steps.files import empty_folder, matching
from mlyard.protocol import SUCCEEDED, StepSpec

WORKSPACE_DEFAULT = "$(Pipeline.Workspace)"


def default_artifact_name(job: JobState, step: StepSpec) -> str:
    """A name unique in the run when `artifact` is not given: stage, job and step names."""
    raw = f"{job.spec.stage}_{job.spec.name}_{step.name}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)


def _artifact_name(job: JobState, step: StepSpec) -> str:
    return (step_input(job, step, "artifact") or step_input(job, step, "artifactName")).strip()


def publish(step: StepSpec, job: JobState, run: StepRun) -> str:
    source = inside_work_dir(job, step_input(job, step, "targetPath", WORKSPACE_DEFAULT), "the path to publish")
    name = _artifact_name(job, step) or default_artifact_name(job, step)
    if job.masker.mask(name) != name:  # the name is stored and shown: it must not carry a secret
        raise StepError("the artifact name contains a secret value; name the artifact without secrets")
    if not source.exists():
        raise StepError(f"the path to publish does not exist: {source}")
    job.log.write(step, f"Uploading pipeline artifact '{name}' from {source}")
    job.log.flush()
    job.reporter.upload_artifact(name, source)
    job.log.write(step, f"Published artifact '{name}'")
    return SUCCEEDED


def _resource_run(job: JobState, step: StepSpec) -> int | None:
    """The run to download from: None for this run; a pipeline resource's run (`download: alias`)."""
    build_type = step_input(job, step, "buildType", "current").strip().lower()
    if build_type == "current":
        return None
    alias = step_input(job, step, "pipeline").strip()
    run_id = step_input(job, step, "runId").strip()
    if build_type != "specific" or not alias:
        raise StepError(f"buildType '{build_type}' is not supported; use 'download: current' or 'download: ALIAS' "
                        "of a pipeline resource")  # fmt: skip
    if not run_id.isdigit():
        raise StepError(f"pipeline resource '{alias}' has no run to download from: its source pipeline has no "
                        "successful run yet")  # fmt: skip
    return int(run_id)


def download(step: StepSpec, job: JobState, run: StepRun) -> str:
    source_run = _resource_run(job, step)
    name = _artifact_name(job, step)
    if not name:
        raise StepError(
            "downloading every artifact of the run is not supported by the mlyard agent; "
            "name the artifact to download (artifact: NAME)"
        )
    raw_path = str(step.inputs.get("path") or step.inputs.get("targetPath") or WORKSPACE_DEFAULT)
    target = resolve_path(job, expand(job, raw_path))
    resource_default = f"{WORKSPACE_DEFAULT}/{step_input(job, step, 'pipeline').strip()}"
    if step.kind == "download" and raw_path.strip() in (WORKSPACE_DEFAULT, resource_default):
        target = target / name  # `download:` puts each artifact in $(Pipeline.Workspace)[/<alias>]/<name>
    target = inside_work_dir(job, str(target), "the download path")
    target.mkdir(parents=True, exist_ok=True)
    job.log.write(step, f"Downloading pipeline artifact '{name}' to {target}")
    job.log.flush()
    job.reporter.download_artifact(name, target, source_run)
    job.log.write(step, f"Downloaded artifact '{name}'")
    return SUCCEEDED


def _folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def publish_build_artifacts(step: StepSpec, job: JobState, run: StepRun) -> str:
    """PublishBuildArtifacts@1: a folder's contents (or one file) become the run's artifact ArtifactName
    (default `drop`), like PublishPipelineArtifact@1. Only publishLocation Container (the server)."""
    location = step_input(job, step, "publishLocation", "Container", aliases=("ArtifactType",)).strip()
    if location.lower() != "container":
        raise StepError(f"publishLocation '{location}' (a file share) is not supported by the mlyard agent; "
                        "use publishLocation: Container (artifacts are kept by the mlyard server)")  # fmt: skip
    raw = step_input(job, step, "PathtoPublish", "$(Build.ArtifactStagingDirectory)")
    source = inside_work_dir(job, raw, "the path to publish")
    name = step_input(job, step, "ArtifactName", "drop").strip()
    if job.masker.mask(name) != name:
        raise StepError("the artifact name contains a secret value; name the artifact without secrets")
    if not source.exists():
        raise StepError(f"the path to publish does not exist: {source}")
    limit = step_input(job, step, "MaxArtifactSize", "0").strip()
    if not limit.isdigit():
        raise StepError(f"input MaxArtifactSize must be a number of bytes (0: no limit), not {limit!r}")
    size = _folder_size(source)
    if int(limit) and size > int(limit):
        raise StepError(f"the artifact is {size} bytes, more than MaxArtifactSize ({limit} bytes)")
    job.log.write(step, f"Uploading build artifact '{name}' from {source} ({size} bytes)")
    job.log.flush()
    job.reporter.upload_artifact(name, source)
    job.log.write(step, f"Published artifact '{name}'")
    return SUCCEEDED


def download_build_artifacts(step: StepSpec, job: JobState, run: StepRun) -> str:
    """DownloadBuildArtifacts@1: artifacts of the current run, each into `downloadPath/<name>` (default
    $(System.ArtifactsDirectory)): one (downloadType single, artifactName) or every one published so far
    (downloadType specific); only their files matching itemPattern (relative to downloadPath:
    `drop/**/*.whl`; default `**`)."""
    build_type = step_input(job, step, "buildType", "current").strip()
    if build_type.lower() != "current":
        raise StepError(f"buildType '{build_type}' is not supported by the mlyard agent; only artifacts of the "
                        "current run can be downloaded (buildType: current)")  # fmt: skip
    download_type = step_input(job, step, "downloadType", "single").strip().lower()
    if download_type not in ("single", "specific"):
        raise StepError(f"downloadType '{download_type}' is not valid: use single or specific")
    if download_type == "single":
        names = [step_input(job, step, "artifactName").strip()]
        if not names[0]:
            raise StepError("input artifactName is required with downloadType single: name the artifact to download")
    else:
        names = job.reporter.list_artifacts()
    target = inside_work_dir(job, step_input(job, step, "downloadPath", "$(System.ArtifactsDirectory)"),
                             "the download path")  # fmt: skip
    if input_flag(job, step, "cleanDestinationFolder"):
        job.log.write(step, f"Cleaning the destination folder {target}")
        empty_folder(job, target, "the download path")
    pattern = step_input(job, step, "itemPattern", "**")
    for name in names:
        _download_one(job, step, name, target, pattern)
    if not names:
        run.warning("the run has no artifacts to download yet")
    return SUCCEEDED


def _download_one(job: JobState, step: StepSpec, name: str, target: Path, pattern: str) -> None:
    staging = job.workspace.temp / f"download-{uuid.uuid4().hex}"
    try:
        job.log.write(step, f"Downloading build artifact '{name}' to {target / name}")
        job.log.flush()
        job.reporter.download_artifact(name, staging / name)
        files = [path for path in matching(job, staging, pattern) if path.is_file() or path.is_symlink()]
        for path in files:
            destination = target / path.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            inside_work_dir(job, str(destination.parent), "the download folder")  # not through a link out
            shutil.move(path, destination)
        job.log.write(step, f"Downloaded {len(files)} file(s) of artifact '{name}'")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
