"""ORM tables of the state database. The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    tokens: Mapped[list[Token]] = relationship(back_populates="user")


class Token(Base):
    __tablename__ = "tokens"
    # A name is unique among a user's tokens that are not revoked (`mlyard tokens revoke NAME`).
    __table_args__ = (
        Index(
            "uq_tokens_user_name_active",
            "user_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split() if s]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False, default="")
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    remote_addr: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class Setting(Base):
    """Platform-wide key/value settings decided at init (e.g. the default branch)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    workspace_uri: Mapped[str] = mapped_column(Text, nullable=False)
    mlflow_tracking_uri: Mapped[str] = mapped_column(Text, nullable=False)
    serving: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Repo(Base):
    __tablename__ = "repos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    default_branch: Mapped[str] = mapped_column(String(255), nullable=False)
    allow_force_push: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class PushEvent(Base):
    """One ref update of one push, recorded before the push returns to the client."""

    __tablename__ = "push_events"
    __table_args__ = (UniqueConstraint("push_id", "seq", name="uq_push_events_push_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    push_id: Mapped[str] = mapped_column(String(64), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    repo: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    ref: Mapped[str] = mapped_column(Text, nullable=False)
    old_sha: Mapped[str] = mapped_column(String(64), nullable=False)
    new_sha: Mapped[str] = mapped_column(String(64), nullable=False)
    pusher: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    # Who the push was for, when a trusted service user pushed for a person (the project creator pushes
    # the first commit for whoever ran `mlyard create`); "" otherwise. Runs it starts are requested for them.
    requested_for: Mapped[str] = mapped_column(String(64), nullable=False, default="", server_default="")
    commits: Mapped[list[dict[str, str]]] = mapped_column(JSON, nullable=False, default=list)
    changed_paths: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The trigger outbox: null until the orchestrator evaluated the triggers and created the runs,
    # in the same transaction (ci/triggers.py).
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class Pipeline(Base):
    """A registered pipeline: a YAML file in a hosted repo, in a folder."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    folder: Mapped[str] = mapped_column(Text, nullable=False, default="")
    repo: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    yaml_path: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Who may delete it or change its variables, with the repository's owner and administrators (NULL: only those).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # users are never deleted

    owner: Mapped[User | None] = relationship()
    # The number of its newest run: incremented in the transaction that creates a run (no race).
    last_run_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class Schedule(Base):
    """One scheduled trigger of a pipeline for one branch (ci/schedules.py), as read from that branch's YAML.

    A schedule is named by its cron and displayName; its rows are never deleted while the pipeline
    exists (``active`` false when the YAML of the branch no longer has it, or the branch is gone), so the
    runs it created (``runs.schedule_id``) keep their meaning.
    """

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("pipeline_id", "branch", "cron", "display_name", name="uq_schedules_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False, index=True)
    branch: Mapped[str] = mapped_column(Text, nullable=False)  # refs/heads/<name>
    cron: Mapped[str] = mapped_column(String(200), nullable=False)
    display_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    always: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    batch: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Fire times up to `checked_at` are handled (run or skipped): the next fire is the first one after it.
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_outcome: Mapped[str] = mapped_column(Text, nullable=False, default="")  # "run 12" or why it was skipped
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class PipelineVariable(Base):
    """A variable set outside YAML; secret values are encrypted at rest."""

    __tablename__ = "pipeline_variables"
    __table_args__ = (UniqueConstraint("pipeline_id", "name", name="uq_pipeline_variables_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Connection(Base):
    """A service connection: settings, secret ones encrypted at rest."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False, default="generic")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    secrets: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class VariableGroup(Base):
    __tablename__ = "variable_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    secrets: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Permission(Base):
    """A pipeline's permission to use a protected resource (connection, variable group, environment)."""

    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("pipeline_id", "kind", "resource", name="uq_permissions_resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    granted_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("pipeline_id", "number", name="uq_runs_pipeline_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False, index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    build_number: Mapped[str] = mapped_column(Text, nullable=False, default="")
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    source_branch: Mapped[str] = mapped_column(Text, nullable=False)
    source_version: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_for: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    state: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    waiting_for: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    errors: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)  # file:line:col diagnostics
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    push_event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The schedule (row of `schedules`) whose fire created it (Build.Reason Schedule), else null.
    schedule_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunStage(Base):
    __tablename__ = "run_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    depends_on: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    condition: Mapped[str] = mapped_column(Text, nullable=False, default="succeeded()")
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunJob(Base):
    __tablename__ = "run_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    stage: Mapped[str] = mapped_column(Text, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(Text, nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(32), nullable=False, default="job")
    environment: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    depends_on: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    condition: Mapped[str] = mapped_column(Text, nullable=False, default="succeeded()")
    continue_on_error: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    approval: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    agent: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    secret_outputs: Mapped[str] = mapped_column(Text, nullable=False, default="")
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunStep(Base):
    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("job_id", "step_key", name="uq_run_steps_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("run_jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    step_key: Mapped[str] = mapped_column(Text, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    issues: Mapped[list[dict[str, str]]] = mapped_column(JSON, nullable=False, default=list)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunArtifact(Base):
    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_artifacts_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class TestResult(Base):
    """A JUnit summary published by PublishTestResults@2."""

    __tablename__ = "test_results"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class CoverageResult(Base):
    """A code coverage summary published by PublishCodeCoverageResults@1/@2 (one per step)."""

    __tablename__ = "coverage_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str] = mapped_column(String(32), nullable=False)
    lines_covered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lines_valid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    branches_covered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    branches_valid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    files: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class WorkspaceJob(Base):
    """A job run on code deployed in an environment's workspace (`mlyard jobs run`), like a Databricks job."""

    __tablename__ = "workspace_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    app: Mapped[str] = mapped_column(String(63), nullable=False)
    branch: Mapped[str] = mapped_column(Text, nullable=False)
    entrypoint: Mapped[str] = mapped_column(Text, nullable=False)
    args: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    commit: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    mlflow_run_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Deployment(Base):
    """A model served by the platform (model CD): one per environment and model name.

    `port` is the stable front port clients call (`url`); `backend_port`/`pid` the scoring server behind it.
    """

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("environment", "model", name="uq_deployments_env_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    environment: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[str] = mapped_column(String(32), nullable=False)
    model_uri: Mapped[str] = mapped_column(Text, nullable=False)
    target: Mapped[str] = mapped_column(String(32), nullable=False, default="local")
    cpu: Mapped[float] = mapped_column(Float, nullable=False, default=1)
    memory: Mapped[float] = mapped_column(Float, nullable=False, default=2)
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    backend_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    log_path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
