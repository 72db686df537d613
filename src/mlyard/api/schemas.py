"""Request bodies of the API (responses are the services' documented dicts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from mlyard.protocol import MAX_BATCHED_REPORTS
from mlyard.services.auth import parse_duration


class UserCreate(BaseModel):
    username: str
    admin: bool = False


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str]
    expires_in: str | None = Field(default=None, description="e.g. 30d, 12h; none = no expiry")
    user: str | None = Field(default=None, description="admins may create tokens for other users")

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value:
            parse_duration(value)  # InvalidInput is a ValueError: a 422 that says what to send
        return value


class RepoCreate(BaseModel):
    name: str
    default_branch: str | None = None
    allow_force_push: bool = False


class RepoUpdate(BaseModel):
    allow_force_push: bool | None = None
    default_branch: str | None = None


class EnvironmentCreate(BaseModel):
    name: str
    mlflow_tracking_uri: str = ""
    workspace_uri: str = ""


class PipelineCreate(BaseModel):
    name: str
    repo: str
    yaml: str = Field(description="path of the YAML file in the repository")
    folder: str = ""


class RunRequest(BaseModel):
    branch: str | None = None
    commit: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, str] = Field(default_factory=dict)


class VariableSet(BaseModel):
    value: str
    secret: bool = False


class PermitRequest(BaseModel):
    resource: str = Field(description="KIND:NAME, e.g. connection:dev-connection")


class ApprovalDecision(BaseModel):
    comment: str = ""


class ConnectionCreate(BaseModel):
    name: str
    type: str = "generic"
    settings: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    update: bool = False


class VariableGroupCreate(BaseModel):
    name: str
    variables: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    update: bool = False


class EnvironmentUpdate(BaseModel):
    approval_required: bool | None = None
    notify_webhook: str | None = Field(default=None, description="Slack-compatible webhook of model CI; '' removes it")


class ClaimRequest(BaseModel):
    agent: str = "agent"  # checked by the service (mlyard.protocol.agent_name_problem)
    wait: float = 20.0
    warm: bool = False  # the agent has a warm step sandbox ready: a job queued while it waits goes to it first


class StepReport(BaseModel):
    state: str
    result: str | None = None
    issues: list[dict[str, str]] = Field(default_factory=list)
    display_name: str | None = Field(None, max_length=1000)  # with its macros expanded by the agent


class LogBatch(BaseModel):
    step_id: str | None = None
    lines: list[tuple[float, str]]  # [unix time, text]: anything else is a 422, not a 500 while appending


class StepReportItem(StepReport):
    """A step's state in a batch of reports (POST /agent/jobs/{id}/reports)."""

    kind: Literal["step"]
    step_id: str = Field(min_length=1, max_length=1000)


class LogItem(LogBatch):
    """Log lines in a batch of reports."""

    kind: Literal["logs"]


class ReportBatch(BaseModel):
    """Reports of one job applied in order, as if sent one by one (POST .../steps/{step} and .../logs)."""

    reports: list[Annotated[StepReportItem | LogItem, Field(discriminator="kind")]] = Field(
        min_length=1, max_length=MAX_BATCHED_REPORTS
    )


class CoverageReport(BaseModel):
    """A step's code coverage summary (mlyard.protocol.CoverageSummary)."""

    format: str = Field(max_length=32)
    lines_covered: int = Field(ge=0)
    lines_valid: int = Field(ge=0)
    branches_covered: int = Field(default=0, ge=0)
    branches_valid: int = Field(default=0, ge=0)
    files: list[str] = Field(default_factory=list, max_length=1000)


class Outcome(BaseModel):
    result: str
    outputs: dict[str, str] = Field(default_factory=dict)
    secret_outputs: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    build_number: str | None = None
    message: str = ""
