"""Azure's predefined variables, built in one place (pure functions of plain facts).

`source_variables`: what the run's source says (the scheduler's conditions see these);
`run_variables`: those and the pipeline's, known when the run is compiled (``${{ variables.X }}``);
`job_variables`: those a claimed job adds; `agent_job_variables`: the job's names as an agent
re-states them from its JobSpec. The agent's own ones (work directories, agent name) are the agent's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlyard.protocol import Reason


@dataclass(frozen=True)
class RunFacts:
    """What the predefined variables of a run are made of."""

    run_id: int
    reason: str
    source_branch: str
    source_version: str
    requested_for: str = ""
    pipeline_id: int = 0
    pipeline_name: str = ""
    repo: str = ""
    server_url: str = ""
    cron_schedule: str = ""  # the displayName of the schedule that fired (Build.Reason Schedule)


@dataclass(frozen=True)
class JobFacts:
    """What the predefined variables of a claimed job are made of."""

    job_id: int
    stage: str
    name: str
    display_name: str
    attempt: int
    stage_display_name: str = ""
    kind: str = "job"
    environment: str = ""
    build_number: str = ""
    started_at: str = ""  # ISO time the run started


def branch_name(ref: str) -> str:
    """`Build.SourceBranchName`: the last path segment of the branch (refs/heads/feature/x -> x)."""
    short = ref.split("/", 2)[-1] if ref.startswith(("refs/heads/", "refs/tags/")) else ref
    return short.rsplit("/", 1)[-1]


def source_variables(run: RunFacts) -> dict[str, str]:
    scheduled = {"Build.CronSchedule.DisplayName": run.cron_schedule} if run.reason == Reason.SCHEDULE else {}
    return scheduled | {
        "Build.BuildId": str(run.run_id),
        "Build.Reason": run.reason,
        "Build.SourceBranch": run.source_branch,
        "Build.SourceBranchName": branch_name(run.source_branch),
        "Build.SourceVersion": run.source_version,
        "Build.RequestedFor": run.requested_for,
        "Build.QueuedBy": run.requested_for,
    }


def run_variables(run: RunFacts) -> dict[str, str]:
    url = run.server_url
    return {
        **source_variables(run),
        "Build.DefinitionName": run.pipeline_name,
        "Build.Repository.Name": run.repo,
        "Build.Repository.Uri": f"{url}/git/{run.repo}.git",
        "System.DefinitionId": str(run.pipeline_id),
        "System.TeamProject": "mlyard",
        "System.CollectionUri": f"{url}/",
        "System.TeamFoundationCollectionUri": f"{url}/",
        "Mlyard.RunUrl": f"{url}/runs/{run.run_id}",  # the run's web page
    }


def agent_job_variables(job_id: int, stage: str, name: str, display_name: str, attempt: int) -> dict[str, str]:
    shown = display_name or name
    return {
        "System.JobId": str(job_id),
        "System.JobName": name,
        "System.JobDisplayName": shown,
        "System.JobAttempt": str(attempt),
        "System.StageName": stage,
    }


def job_variables(run: RunFacts, job: JobFacts) -> dict[str, str]:
    values = {
        **run_variables(run),
        **agent_job_variables(job.job_id, job.stage, job.name, job.display_name, job.attempt),
        "Build.BuildNumber": job.build_number,
        "System.StageDisplayName": job.stage_display_name or job.stage,
        "System.PhaseName": job.name,
        "System.JobKind": job.kind,
        "System.PlanId": str(run.run_id),
        "System.PipelineStartTime": job.started_at,
    }
    if job.environment:
        values["Environment.Name"] = job.environment
    return values
