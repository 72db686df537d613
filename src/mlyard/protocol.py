"""Wire shapes between the server and its agents (shared by api, agent and client).

An agent claims a job and receives a :class:`JobSpec`: everything it needs to run the job without
touching the database. It reports back step states, log lines, output variables, artifacts and test
results through the agent API, using the job's own access token (``JobSpec.access_token``).
Plain dataclasses with ``to_dict`` / ``from_dict``: the agent does not need pydantic.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """The one vocabulary of run, stage, job and step states (Azure's names, camelCase as in its REST API).

    Used by the server (``ci/states.py`` holds the transition table), the API, the CLI, the web pages and
    the agents. A member is a ``str``: it compares equal to, and is stored and sent as, its value.
    """

    NOT_STARTED = "notStarted"
    QUEUED = "queued"
    WAITING = "waiting"  # for permission to use a protected resource, or for an approval
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ISSUES = "succeededWithIssues"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"


class Reason(StrEnum):
    """Why a run was queued: the values of Azure's ``Build.Reason`` that mlyard produces (a ``str``)."""

    MANUAL = "Manual"
    INDIVIDUAL_CI = "IndividualCI"
    BATCHED_CI = "BatchedCI"
    SCHEDULE = "Schedule"  # a scheduled trigger (`schedules:`) fired


# Results of steps, jobs, stages and runs (Azure's TaskResult names): the final states. The names below are
# the members of State, typed as str for code that keeps states in str-typed fields and dicts.
SUCCEEDED: str = State.SUCCEEDED
SUCCEEDED_WITH_ISSUES: str = State.SUCCEEDED_WITH_ISSUES
FAILED: str = State.FAILED
CANCELED: str = State.CANCELED
SKIPPED: str = State.SKIPPED
RESULTS: tuple[str, ...] = (SUCCEEDED, SUCCEEDED_WITH_ISSUES, FAILED, CANCELED, SKIPPED)
FINAL_STATES: frozenset[str] = frozenset(RESULTS)
SUCCESSFUL_STATES: frozenset[str] = frozenset({SUCCEEDED, SUCCEEDED_WITH_ISSUES})

# Agent names: what `POST /agent/claim` accepts. `local-N` is reserved for the server's own agents
# (processes that die with the server: a restarted server fails their jobs, not those of other agents).
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
AGENT_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"
LOCAL_AGENT_NAME = re.compile(r"local-[0-9]+")
# The most reports (steps' states, log batches) in one `POST /agent/jobs/{id}/reports` (JobSpec.batch_reports)
MAX_BATCHED_REPORTS = 64


def agent_name_problem(name: str, *, local: bool = False) -> str | None:
    """Why `name` cannot be an agent's name (None when it can)."""
    if not AGENT_NAME.fullmatch(name):
        return f"agent name {name!r} is invalid: use {AGENT_NAME_RULE}"
    if LOCAL_AGENT_NAME.fullmatch(name) and not local:
        return f"agent name {name!r} is reserved for the server's own agents (local-N): choose another name"
    return None


@dataclass(frozen=True)
class StepSpec:
    """One step of a job, as compiled (see mlyard.pipelines.model.Step).

    ``kind`` is the step as written: "checkout", "task", or a shortcut ("script", "bash", "pwsh",
    "powershell", "publish", "download"). Every kind but checkout runs ``task`` (e.g. "CmdLine@2") with
    ``inputs`` (a `script:` step is CmdLine@2 with inputs {"script": ...}; `bash:` is Bash@3 with
    targetType inline; `pwsh:` and `powershell:` are PowerShell@2 with targetType inline;
    `publish:` PublishPipelineArtifact@1; `download:` DownloadPipelineArtifact@2, whose default
    path is $(Pipeline.Workspace)/<artifact>).
    For checkout, ``inputs`` has "repository" ("self" or "none") and the checkout options.
    ``unsupported``: why mlyard cannot run this step (valid Azure Pipelines, e.g. a task mlyard does not
    run); the agent fails the step with this message.
    """

    id: str
    name: str
    display_name: str
    kind: str
    task: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    condition: str = "succeeded()"
    continue_on_error: bool = False
    timeout_in_minutes: int = 0
    enabled: bool = True
    retry_count_on_task_failure: int = 0
    unsupported: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Connection:
    """A service connection the job may use (already permitted): its settings become environment
    variables of the steps that name it (AzureCLI@1/@2 ``azureSubscription``). ``secret_keys`` lists
    the settings whose values are secret (masked in logs)."""

    name: str
    type: str
    settings: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Repository:
    """What `checkout: self` (or `checkout: alias` of a repository resource) fetches: the exact commit,
    over git smart HTTP with the job's token."""

    name: str
    url: str
    commit: str
    ref: str


@dataclass(frozen=True)
class JobSpec:
    job_id: int
    run_id: int
    attempt: int
    stage: str
    name: str
    display_name: str
    access_token: str
    timeout_in_minutes: int = 60
    cancel_timeout_in_minutes: int = 5
    workspace_clean: str | None = None
    # Variables with Azure's names (e.g. "Build.BuildId"): non-secret ones become environment
    # variables (BUILD_BUILDID); secret ones only through a step's `env:` mapping. Both expand
    # as $(name) macros in inputs. `readonly` names cannot be overwritten by task.setvariable.
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    readonly: list[str] = field(default_factory=list)
    steps: list[StepSpec] = field(default_factory=list)
    repository: Repository | None = None
    # resources.repositories by alias: what `checkout: alias` fetches (the commit pinned when the run started)
    repositories: dict[str, Repository] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    lease_seconds: int = 30
    # The server takes several reports (steps' states, log lines) in one request (POST .../reports); an agent
    # sends them one by one to a server that does not say so.
    batch_reports: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["steps"] = [StepSpec.from_dict(s) for s in data.get("steps", [])]
        repo = data.get("repository")
        values["repository"] = Repository(**repo) if repo else None
        values["repositories"] = {k: Repository(**v) for k, v in (data.get("repositories") or {}).items()}
        values["connections"] = {k: Connection(**v) for k, v in (data.get("connections") or {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class Issue:
    """A warning or error reported by a step (`##vso[task.logissue]` or the runner itself)."""

    type: str  # "warning" | "error"
    message: str


@dataclass
class JobOutcome:
    """What a finished job reports: its result, output variables ("step.var" -> value; secret ones in
    ``secret_outputs``), build tags and a new build number if a step set them."""

    result: str
    outputs: dict[str, str] = field(default_factory=dict)
    secret_outputs: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    build_number: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CoverageSummary:
    """The code coverage a step published (PublishCodeCoverageResults@1/@2): line and branch counts of
    its report files added together, ``format`` "Cobertura" or "JaCoCo"."""

    format: str
    lines_covered: int = 0
    lines_valid: int = 0
    branches_covered: int = 0
    branches_valid: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def line_rate(self) -> float | None:
        return self.lines_covered / self.lines_valid if self.lines_valid else None

    @property
    def branch_rate(self) -> float | None:
        return self.branches_covered / self.branches_valid if self.branches_valid else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoverageSummary:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
