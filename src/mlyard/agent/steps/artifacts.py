"""PublishPipelineArtifact@1 (`publish:`) and DownloadPipelineArtifact@2 (`download:`): artifacts of
the current run, moved by the reporter (the runner uploads / downloads tar.gz archives)."""

from __future__ import annotations

import re

from mlyard.agent.environment import expand, inside_work_dir, resolve_path, step_input
from mlyard.agent.state import JobState, StepError, StepRun
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
