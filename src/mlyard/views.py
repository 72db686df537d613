"""Typed views of the API's answers, shared by the client, the CLI, the web pages and the tests.

Light dataclasses (the CLI imports them: no pydantic, no `@dataclass` at start-up). Each has
``from_dict``, tolerant of keys it does not know (a newer server) and of keys missing (an older one),
and ``to_dict``, which gives back the wire document: its known keys in the server's order, then the
unknown ones unchanged.
States are `mlyard.protocol.State` members (a state this version does not know stays a plain string).
"""

from __future__ import annotations

import inspect  # already imported by dataclasses
from dataclasses import MISSING, Field, field
from typing import Any, ClassVar, TypeVar, dataclass_transform

from mlyard.protocol import State

V = TypeVar("V", bound="View")


def state(value: Any) -> State:
    """`value` as a State member; an unknown state (a newer server) stays the string it was."""
    try:
        return State(value)
    except ValueError:
        return value  # type: ignore[no-any-return]


@dataclass_transform(kw_only_default=True, field_specifiers=(field,))
class View:
    """The shared behaviour: keyword construction, equality, from_dict / to_dict with unknown keys in `extra`.

    A light dataclass: each subclass lists its fields as annotated class attributes with defaults
    (`field(default_factory=...)` for mutable ones). Not `@dataclass`, whose generated methods cost the
    CLI ~1 ms of start-up per class; type checkers see the same constructor (PEP 681).
    """

    # Keys only some answers carry (e.g. a token's secret, only when it is created): left out of
    # to_dict when absent (None).
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    FIELDS: ClassVar[tuple[str, ...]] = ()  # in the server's order (a subclass's after its base's)
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    FACTORIES: ClassVar[dict[str, Any]] = {}
    NESTED: ClassVar[dict[str, type[View]]] = {}  # fields that hold views (a list of them, or one; None stays None)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [
            name
            for name, hint in inspect.get_annotations(cls).items()
            if not str(hint).startswith("ClassVar") and name != "extra"
        ]
        cls.FIELDS = cls.FIELDS + tuple(name for name in own if name not in cls.FIELDS)
        cls.DEFAULTS, cls.FACTORIES = dict(cls.DEFAULTS), dict(cls.FACTORIES)
        for name in own:
            value = cls.__dict__.get(name, MISSING)
            if isinstance(value, Field):
                if value.default_factory is not MISSING:
                    cls.FACTORIES[name] = value.default_factory
                    cls.DEFAULTS.pop(name, None)
                else:
                    cls.DEFAULTS[name] = value.default
                delattr(cls, name)
            elif value is not MISSING:
                cls.DEFAULTS[name] = value
                cls.FACTORIES.pop(name, None)

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS) - {"extra"}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        for name in self.FIELDS:
            if name in values:
                setattr(self, name, values[name])
            elif name in self.FACTORIES:
                setattr(self, name, self.FACTORIES[name]())
            elif name in self.DEFAULTS:
                setattr(self, name, self.DEFAULTS[name])
            else:
                raise TypeError(f"{type(self).__name__} needs {name}")
        self.extra = dict(values.get("extra") or {})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.FIELDS)})"

    @classmethod
    def from_dict(cls: type[V], data: dict[str, Any]) -> V:
        names = cls.FIELDS
        values = {k: cls._convert(k, v) for k, v in data.items() if k in names}
        return cls(**values, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        """Turn one wire value into its typed form: the views of NESTED's fields (a list of them, or one), states;
        subclasses extend it."""
        nested = cls.NESTED.get(key)
        if nested is not None and value is not None:
            return [nested.from_dict(v) for v in value] if isinstance(value, list) else nested.from_dict(value)
        return state(value) if key == "state" and value is not None else value

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if name in self.OPTIONAL and value is None:
                continue
            doc[name] = _plain(value)
        doc.update(self.extra)
        return doc


def _plain(value: Any) -> Any:
    if isinstance(value, View):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, State):
        return str(value)
    return value


# -- runs ----------------------------------------------------------------------------------------
class RunBrief(View):
    """A run as queued (`POST /pipelines/{name}/runs`)."""

    id: int = 0
    number: int = 0
    build_number: str = ""
    state: State = State.QUEUED
    reason: str = ""
    source_branch: str = ""
    source_version: str = ""
    queued_at: str = ""
    finished_at: str | None = None
    errors: list[str] = field(default_factory=list)  # file:line:col diagnostics of an invalid pipeline

    @property
    def commit(self) -> str:
        return self.source_version[:10]

    @property
    def first_error(self) -> str:
        """The first error, with how many more there are ("" when none)."""
        if not self.errors:
            return ""
        more = len(self.errors) - 1
        return self.errors[0] + (f" (+{more} more)" if more else "")


class RunSummary(RunBrief):
    """A run in `GET /runs`."""

    pipeline: str = ""
    message: str = ""


class RunListItem(RunSummary):
    """A run in the web UI's lists: who asked for it and how long it took (None before it started)."""

    requested_for: str = ""
    started_at: str | None = None
    duration_seconds: float | None = None


class StepView(View):
    """A step of a job: its state, issues and duration."""

    key: str = ""
    name: str = ""
    display_name: str = ""
    state: State = State.NOT_STARTED
    issues: list[dict[str, Any]] = field(default_factory=list)  # {"type": "error"|"warning", "message"}
    started_at: str | None = None
    duration_seconds: float | None = None


class JobView(View):
    """A job of a run's stage, with its steps."""

    name: str = ""
    display_name: str = ""
    state: State = State.NOT_STARTED
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    message: str = ""
    id: int = 0
    kind: str = ""
    agent: str | None = None
    environment: str | None = None
    approval: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[StepView] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"steps": StepView}


class StageView(View):
    """A stage of a run, with its jobs."""

    name: str = ""
    display_name: str = ""
    state: State = State.NOT_STARTED
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    message: str = ""
    jobs: list[JobView] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"jobs": JobView}


class RunTestTotals(View):
    """The test results a run published (PublishTestResults@2), summed over its jobs."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # classname, name, message
    runs: int = 0  # how many result files were published


class RunCoverage(View):
    """The code coverage a run published (PublishCodeCoverageResults@1/@2), added up over its jobs;
    a rate is None when there was nothing to cover."""

    lines_covered: int = 0
    lines_valid: int = 0
    branches_covered: int = 0
    branches_valid: int = 0
    line_rate: float | None = None
    branch_rate: float | None = None
    reports: int = 0  # how many steps published coverage


class RunView(RunSummary):
    """A run with its tree of stages, jobs and steps (`GET /runs/{id}`)."""

    requested_for: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    waiting_for: Any = None
    started_at: str | None = None
    duration_seconds: float | None = None
    url: str = ""
    web_url: str = ""
    artifacts: list[str] = field(default_factory=list)
    tests: RunTestTotals | None = None
    stages: list[StageView] = field(default_factory=list)
    coverage: RunCoverage | None = None

    NESTED: ClassVar[dict[str, type[View]]] = {"stages": StageView, "tests": RunTestTotals, "coverage": RunCoverage}

    @property
    def jobs(self) -> list[JobView]:
        return [job for stage in self.stages for job in stage.jobs]


class RunTests(View):
    """`GET /runs/{id}/tests`."""

    run: int = 0
    tests: RunTestTotals | None = None

    NESTED: ClassVar[dict[str, type[View]]] = {"tests": RunTestTotals}


class LogLine(View):
    """One line of a run's log: when the agent wrote it (ISO, UTC) and its text (masked)."""

    at: str = ""
    text: str = ""


class StepLog(View):
    """A section of a job's log: a step (by display name and key), or the job's own "Initialize job" /
    "Finalize job" lines (key None)."""

    name: str = ""
    key: str | None = None
    lines: list[LogLine] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"lines": LogLine}


class JobLog(View):
    """A job's log: its sections in the order they ran."""

    name: str = ""
    steps: list[StepLog] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"steps": StepLog}


class RunLogs(View):
    """`GET /runs/{id}/logs?format=json` (`mlyard runs logs RUN --json`): the run's log as jobs, steps, lines."""

    run: int = 0
    state: State = State.NOT_STARTED
    truncated: bool = False  # more lines than the server sends as JSON (the text log has them all)
    jobs: list[JobLog] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"jobs": JobLog}


class ArtifactView(View):
    """An artifact a run's job published (a .tar.gz of a folder)."""

    name: str = ""
    size: int = 0
    job_id: int | None = None
    created_at: str = ""


class PermitResult(View):
    """What permitting a waiting run granted (`KIND:NAME` resources)."""

    run: int = 0
    granted: list[str] = field(default_factory=list)


class ApprovalResult(View):
    """The jobs an approval or a rejection decided."""

    run: int = 0
    jobs: list[str] = field(default_factory=list)
    approved: bool = False


# -- pipelines, repositories, identity -----------------------------------------------------------
class VariableView(View):
    """A pipeline variable set outside YAML (a secret's value is never sent)."""

    name: str = ""
    value: str | None = None  # None for a secret
    secret: bool = False


class ScheduleView(View):
    """A scheduled trigger of a pipeline for one branch (`pipelines show`): its next fire times (UTC, ISO).

    A fire of an `always: false` schedule runs only when the branch changed since the schedule's last
    successful run; `last_outcome` says what the last fire did ("run 12" or why it was skipped)."""

    display_name: str = ""
    cron: str = ""
    branch: str = ""
    always: bool = False
    batch: bool = False
    next_fires: list[str] = field(default_factory=list)
    last_fire_at: str | None = None
    last_outcome: str = ""


class PipelineView(View):
    """A pipeline (`GET /pipelines`); `show` adds its variables, permissions and schedules."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"variables", "permissions", "recent_runs", "schedules"})
    id: int = 0
    name: str = ""
    folder: str = ""
    repo: str = ""
    yaml_path: str = ""
    created_by: str | None = None
    owner: str | None = None
    created_at: str = ""
    last_run: RunBrief | None = None
    variables: list[VariableView] | None = None
    permissions: list[str] | None = None
    recent_runs: list[RunBrief] | None = None
    schedules: list[ScheduleView] | None = None

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        if key == "schedules" and value is not None:
            return [ScheduleView.from_dict(s) for s in value]
        if key == "last_run" and value is not None:
            return RunBrief.from_dict(value)
        if key == "recent_runs" and value is not None:
            return [RunBrief.from_dict(r) for r in value]
        if key == "variables" and value is not None:
            return [VariableView.from_dict(v) for v in value]
        return super()._convert(key, value)


class RepoView(View):
    """A repository; `show` adds its branches, tags and last commit."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"branches", "tags", "last_commit"})
    name: str = ""
    default_branch: str = ""
    allow_force_push: bool = False
    created_by: str | None = None
    created_at: str = ""
    clone_url: str = ""
    branches: list[dict[str, Any]] | None = None  # name, sha, date, subject
    tags: list[str] | None = None
    last_commit: dict[str, Any] | None = None  # sha, subject, author, date


class TokenView(View):
    """An API token; `token` (the secret) only in the answer that created it."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"token"})
    id: int = 0
    name: str = ""
    user: str = ""
    prefix: str = ""
    scopes: list[str] = field(default_factory=list)
    state: str = ""  # active, expired or revoked (not a run state)
    created_at: str = ""
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None
    token: str | None = None

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        return value


class UserView(View):
    """A user (`GET /users`)."""

    id: int = 0
    username: str = ""
    is_admin: bool = False
    created_at: str = ""


class MeView(View):
    """Who a token belongs to (`GET /me`)."""

    username: str = ""
    is_admin: bool = False
    token_id: int | None = None
    scopes: list[str] = field(default_factory=list)


# -- the server ----------------------------------------------------------------------------------
class WarmPoolView(View):
    """One of the server's warm pools (`GET /status`): processes that wait ready so a first use does not wait for
    their imports, as many as a setting allows."""

    name: str = ""  # mlflow-zygote, mlflow-servers, scoring, step-sandboxes, job-sandboxes
    ready: int = 0  # ready now
    starting: int = 0  # importing, or waiting for an idle core
    limit: int | None = None  # the most it keeps (None: one per environment in use)
    setting: str = ""  # what sets the limit, with its value (e.g. MLYARD_STEP_WARM=1)
    detail: str = ""  # in words: what it holds, or why it is empty


class ServerStatusView(View):
    """The server, its local agents, its jobs and its warm pools (`GET /status`, `mlyard status`)."""

    version: str = ""
    url: str = ""
    started_at: str = ""
    uptime_seconds: float = 0.0
    local_agents: int = 0  # agent processes of the server's own that run now
    local_agents_configured: int = 0  # `mlyard server --agents N`
    jobs_queued: int = 0  # pipeline jobs waiting for an agent
    jobs_running: int = 0
    pools: list[WarmPoolView] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"pools": WarmPoolView}


# -- environments and workspace jobs -------------------------------------------------------------
class EnvironmentView(View):
    """An environment; its update answer adds whether a notification webhook is set."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"notify_webhook"})
    name: str = ""
    workspace_uri: str = ""
    mlflow_tracking_uri: str = ""
    serving: dict[str, Any] | None = None
    approval_required: bool = False
    created_at: str = ""
    notify_webhook: bool | None = None


class WorkspaceJobView(View):
    """An entry point run in an environment's workspace (`mlyard jobs run`)."""

    id: int = 0
    environment: str = ""
    app: str = ""
    branch: str = ""
    entrypoint: str = ""
    args: list[str] = field(default_factory=list)
    state: State = State.QUEUED
    exit_code: int | None = None
    message: str = ""
    commit: str | None = None
    requested_by: str | None = None
    mlflow_run_ids: list[str] = field(default_factory=list)
    queued_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None


class DeploymentView(View):
    """A model version served in an environment."""

    name: str = ""
    environment: str = ""
    model: str = ""
    version: str = ""
    model_uri: str = ""
    target: str = ""
    cpu: float = 1
    memory: float = 2
    url: str = ""
    scoring_uri: str = ""
    port: int | None = None
    backend_port: int | None = None
    pid: int | None = None
    state: str = ""  # a serving state (starting, running, stopped, failed), not a run state
    message: str = ""
    log_path: str | None = None
    requested_by: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        return value


class FeatureDriftView(View):
    """One feature's drift against the baseline (mlyard.monitoring.drift)."""

    name: str = ""
    kind: str = ""  # numeric or categorical
    count: int = 0
    missing_rate: float = 0.0
    baseline_missing_rate: float = 0.0
    psi: float | None = None
    test: str = ""  # ks or chi2
    statistic: float | None = None
    p_value: float | None = None
    drifted: bool = False
    reason: str = ""


class QualityPointView(View):
    hour: str = ""
    count: int = 0
    value: float = 0.0


class QualityView(View):
    """The model's metric on the labelled rows (accuracy or mae), overall and by hour."""

    problem: str = ""
    metric: str = ""
    labelled: int = 0
    value: float = 0.0
    by_hour: list[QualityPointView] = field(default_factory=list)

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        return [QualityPointView.from_dict(p) for p in value] if key == "by_hour" else value


class MonitorReportView(View):
    """`mlyard deployments monitor`: drift and quality of a deployment over a window (docs/monitoring.md)."""

    deployment: str = ""
    environment: str = ""
    model_versions: list[str] = field(default_factory=list)
    since: str = ""
    until: str = ""
    requests: int = 0
    rows: int = 0
    errors: int = 0
    error_rate: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    truncated: bool = False
    baseline: str = ""
    features: list[FeatureDriftView] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    prediction_drift: FeatureDriftView | None = None
    quality: QualityView | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def _convert(cls, key: str, value: Any) -> Any:
        if key == "features":
            return [FeatureDriftView.from_dict(f) for f in value]
        if key == "prediction_drift" and value is not None:
            return FeatureDriftView.from_dict(value)
        if key == "quality" and value is not None:
            return QualityView.from_dict(value)
        return list(value) if key in ("model_versions", "drifted", "notes") else value


# -- protected resources -------------------------------------------------------------------------
class ConnectionView(View):
    """A service connection: plain settings and the names of its secret ones (never their values)."""

    name: str = ""
    type: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    created_by: str | None = None
    created_at: str = ""


class VariableGroupView(View):
    """A variable group: plain variables and the names of its secret ones (never their values)."""

    name: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    secret_variables: list[str] = field(default_factory=list)
    created_by: str | None = None
    created_at: str = ""


class PipelinePermission(View):
    """A protected resource a pipeline may use; `granted` is False when it already could."""

    pipeline: str = ""
    resource: str = ""  # KIND:NAME
    granted: bool = False


# -- audit and push events -----------------------------------------------------------------------
class AuditEntry(View):
    """One entry of the audit log."""

    id: int = 0
    at: str = ""
    actor: str | None = None
    action: str = ""
    target: str | None = None
    remote_addr: str | None = None
    detail: Any = None


class PushEvent(View):
    """One ref a push changed (`GET /repos/{name}/events`)."""

    id: int = 0
    push_id: str = ""
    seq: int = 0
    repo: str = ""
    ref: str = ""
    kind: str = ""  # create, update or delete
    old_sha: str = ""
    new_sha: str = ""
    pusher: str | None = None
    requested_for: str | None = None  # who the push was for (`git push -o requested-for=USER`), else the pusher
    commits: list[Any] = field(default_factory=list)
    changed_paths: list[str] = field(default_factory=list)
    created_at: str = ""


# -- project template updates (`mlyard projects update`, client-side) --------------------------------
class PushedPipeline(View):
    """A pipeline of the project and the pushed branch: whether its CI trigger runs it, and the run."""

    pipeline: str = ""
    triggers: bool = False
    reason: str = ""  # the trigger's decision, as `mlyard pipelines explain-trigger` says it
    run: RunSummary | None = None  # None: no run expected, or none appeared within the wait

    NESTED: ClassVar[dict[str, type[View]]] = {"run": RunSummary}


class ProjectUpdateView(View):
    """What `mlyard projects update REPO` did: the branch it pushed with the template's changes."""

    repo: str = ""
    base_branch: str = ""  # the project's default branch the update starts from
    template: str = ""  # the platform template's clone URL
    from_commit: str = ""  # the template revision the project had (`_commit` of its answers)
    to_commit: str = ""  # the template revision it is updated to (HEAD of the template's default branch)
    up_to_date: bool = False  # nothing to do: no branch was pushed
    branch: str | None = None
    commit: str | None = None
    changed_files: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # files with conflict markers, to resolve on the branch
    ignored_src_path: str | None = None  # the answers' `_src_path` when it named another template
    pipelines: list[PushedPipeline] = field(default_factory=list)
    # the creator's pipelines whose file was on the default branch but which were not registered (now they are)
    registered: list[str] = field(default_factory=list)

    NESTED: ClassVar[dict[str, type[View]]] = {"pipelines": PushedPipeline}


def duration(seconds: float | None) -> str:
    """A duration as the CLI and the web UI show it: "0.4 s", "12.3 s", "3 min 4 s", "2 h 5 min"; "" when there
    is none (not started)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def folder_tree(pipelines: list[PipelineView]) -> dict[str, list[str | PipelineView]]:
    """Pipelines by folder, the one rule of `mlyard pipelines list` and the web UI's home page: folder key (""
    is the root `/`; "a/b" is b inside a) -> its children in the order given, sub-folder keys (str) and
    pipelines."""
    children: dict[str, list[str | PipelineView]] = {"": []}
    for row in pipelines:
        parent = ""
        for part in [p for p in row.folder.split("/") if p]:
            key = f"{parent}/{part}" if parent else part
            if key not in children:
                children[key] = []
                children[parent].append(key)
            parent = key
        children[parent].append(row)
    return children
