"""Azure's predefined variables, built in one place (pure functions of plain facts).

`source_variables`: what the run's source says (the scheduler's conditions see these);
`run_variables`: those and the pipeline's, known when the run is compiled (``${{ variables.X }}``);
`job_variables`: those a claimed job adds; `agent_job_variables`: the job's names as an agent
re-states them from its JobSpec. The agent's own ones (work directories, agent name) are the agent's.
`TEMPLATE_VARIABLES` are those Azure documents as "available in templates" (``${{ variables['X'] }}``);
`template_context` makes the compile context of given values (offline: ``--var Build.SourceBranch=...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlyard.protocol import Reason

# "Use predefined variables" (Azure Pipelines docs), the rows marked "Available in templates? Yes".
TEMPLATE_VARIABLES = frozenset(
    {"Build.CronSchedule.DisplayName", "Build.DefinitionName", "Build.DefinitionVersion", "Build.QueuedBy",
     "Build.QueuedById", "Build.Reason", "Build.Repository.ID", "Build.Repository.Name", "Build.Repository.Provider",
     "Build.Repository.Uri", "Build.RequestedFor", "Build.RequestedForEmail", "Build.RequestedForId",
     "Build.SourceBranch", "Build.SourceBranchName", "Build.SourceVersion", "System.CollectionId",
     "System.CollectionUri", "System.DefinitionId", "System.HostType", "System.TeamFoundationCollectionUri",
     "System.TeamProject", "System.TeamProjectId", "System.PullRequest.IsFork", "System.PullRequest.PullRequestId",
     "System.PullRequest.PullRequestNumber", "System.PullRequest.SourceBranch", "System.PullRequest.SourceCommitId",
     "System.PullRequest.SourceRepositoryURI", "System.PullRequest.TargetBranch",
     "System.PullRequest.targetBranchName"}
)  # fmt: skip
_TEMPLATE_NAMES = {name.lower(): name for name in TEMPLATE_VARIABLES}
# `System.TeamProject`: mlyard has one project, so run links
# `$(System.CollectionUri)$(System.TeamProject)/_build/results?buildId=$(Build.BuildId)` open the run
# in its web UI (web/pages.py) as in Azure DevOps.
TEAM_PROJECT = "mlyard"


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
    phase: str = ""  # the job's name as written, for a leg of a job strategy (else its name)
    position: int = 1  # System.JobPositionInPhase
    total: int = 1  # System.TotalJobsInPhase


def branch_name(ref: str) -> str:
    """`Build.SourceBranchName`: the last path segment of the branch (refs/heads/feature/x -> x)."""
    short = ref.split("/", 2)[-1] if ref.startswith(("refs/heads/", "refs/tags/")) else ref
    return short.rsplit("/", 1)[-1]


def is_template_variable(name: str) -> bool:
    """Whether ``name`` (any case) is a predefined variable ``${{ }}`` expressions may read."""
    return name.lower() in _TEMPLATE_NAMES


def template_context(given: Mapping[str, str]) -> dict[str, str]:
    """The compile context of predefined values ``given`` (names in any case, spelled as Azure does):
    ``Build.SourceBranchName`` and ``System.PullRequest.targetBranchName`` are derived from the branches
    when not given; ``System.TeamProject`` is mlyard's one project."""
    values = {_TEMPLATE_NAMES.get(name.lower(), name): value for name, value in given.items()}
    values.setdefault("System.TeamProject", TEAM_PROJECT)
    branch = values.get("Build.SourceBranch")
    if branch is not None:
        values.setdefault("Build.SourceBranchName", branch_name(branch))
    target = values.get("System.PullRequest.TargetBranch")
    if target is not None:
        values.setdefault("System.PullRequest.targetBranchName", branch_name(target))
    return values


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
        "System.TeamProject": TEAM_PROJECT,
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
        "System.PhaseName": job.phase or job.name,
        "System.JobPositionInPhase": str(job.position),
        "System.TotalJobsInPhase": str(job.total),
        "System.JobKind": job.kind,
        "System.PlanId": str(run.run_id),
        "System.PipelineStartTime": job.started_at,
    }
    if job.environment:
        values["Environment.Name"] = job.environment
    return values
