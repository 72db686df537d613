"""Typed HTTP client of the mlyard API, shared by the CLI and the agent.

It owns every path of the API: callers use its resources (`client.runs.get(7)` -> `RunView`,
`client.pipelines.run(name, parameters=...)`, `client.repos.list()` ...), which answer with the typed
views of `mlyard.views` (runs, pipelines, repositories, tokens, users) or the decoded JSON (the rest).

Errors come back as the same `UserError` subclasses the server raised (by HTTP status), with
the server's message, so the CLI prints them exactly like local errors.

The transport is the standard library's `http.client`, with one keep-alive connection per thread.
The API needs nothing more (JSON, byte bodies, one streamed text answer), and every CLI command
pays for its client's import: httpx and httpcore cost ~0.1 s of CPU per command on a small machine,
a third of the start-up budget of client commands (see benchmarks/cli_startup.py).
"""

from __future__ import annotations

import builtins
import http.client
import json as jsonlib
import socket
import ssl  # already imported by http.client
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from mlyard import __version__
from mlyard.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MlyardError,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    PermissionDenied,
    ServerUnavailable,
    TooManyAttempts,
)
from mlyard.views import (
    ApprovalResult,
    ArtifactView,
    AuditEntry,
    ConnectionView,
    DeploymentView,
    EnvironmentView,
    MeView,
    MonitorReportView,
    PermitResult,
    PipelinePermission,
    PipelineView,
    PushEvent,
    RepoView,
    RunBrief,
    RunLogs,
    RunSummary,
    RunTests,
    RunView,
    ServerStatusView,
    TokenView,
    UserView,
    VariableGroupView,
    VariableView,
    View,
    WorkspaceJobView,
)

V = TypeVar("V", bound=View)

API = "/api/v1"  # every path of the API is under this prefix; only this module spells them
AGENT_CLAIM_PATH = f"{API}/agent/claim"


def agent_job_path(job_id: int) -> str:
    """The base path of an agent's calls about one claimed job (heartbeat, log, artifacts, complete)."""
    return f"{API}/agent/jobs/{job_id}"


_BY_STATUS: dict[int, type[MlyardError]] = {
    400: InvalidInput,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}

# A kept-alive connection the server has closed in the meantime (uvicorn closes idle ones after 5 s)
# fails like this before any answer arrives: the request never reached the application, so it is sent
# again once on a fresh connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Response:
    """A complete answer: status, reason, headers and body."""

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client:
    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"the server URL {url!r} is not an http:// or https:// URL: set MLYARD_URL or "
                               "the url in your CLI config (`mlyard init` writes it)")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"User-Agent": f"mlyard/{__version__}", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self.runs = Runs(self)
        self.pipelines = Pipelines(self)
        self.repos = Repos(self)
        self.environments = Environments(self)
        self.users = Users(self)
        self.tokens = Tokens(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.deployments = Deployments(self)
        self.connections = Connections(self)
        self.variable_groups = VariableGroups(self)

    # -- identity ------------------------------------------------------------------------------
    def me(self) -> MeView:
        """Who the token belongs to, and its scopes."""
        return MeView.from_dict(self.get(f"{API}/me"))

    def status(self) -> ServerStatusView:
        """The server, its local agents, its jobs and its warm pools."""
        return ServerStatusView.from_dict(self.get(f"{API}/status"))

    def audit(self, *, limit: int = 50, action: str | None = None) -> list[AuditEntry]:
        """The newest audit entries (admin)."""
        return [AuditEntry.from_dict(e) for e in self.get(f"{API}/audit", limit=limit, action=action)]

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the API's shapes ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send a JSON request; return the decoded JSON answer (None for an empty one)."""
        body = None if json is None else jsonlib.dumps(json).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self._send(method, path, params=params, body=body, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def put_bytes(self, path: str, data: bytes, *, content_type: str = "application/octet-stream") -> Any:
        """Upload a body of bytes (artifacts); returns the JSON answer."""
        return self._send("PUT", path, body=data, headers={"Content-Type": content_type}).json()

    def get_bytes(self, path: str) -> bytes:
        """Download a body of bytes (artifacts)."""
        return self._send("GET", path).content

    def text(self, path: str, **params: Any) -> str:
        """A plain-text answer (logs)."""
        return self._send("GET", path, params=params).text

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a streamed plain-text answer, as they arrive (no read timeout).

        Uses a connection of its own, closed when the stream ends or the caller stops iterating.
        """
        connection = self._connection(timeout=10.0)
        try:
            self._connect(connection)
            try:
                connection.request("GET", self._target(path, params), headers=self._headers)
                connection.sock.settimeout(None)  # a followed log may be quiet for a long time
                response = connection.getresponse()
                if response.status >= 400:
                    raise _error(Response(response.status, response.reason, response.headers, response.read()))
                while line := response.readline():
                    yield line.decode("utf-8", errors="replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(exc, connected=True) from None
        finally:
            connection.close()

    # -- transport -----------------------------------------------------------------------------
    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self._prefix + path + (f"?{urlencode(query, doseq=True)}" if query else "")

    def _connection(self, *, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> Response:
        target = self._target(path, params)
        all_headers = {**self._headers, **(headers or {})}
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._connection(timeout=self.timeout)
                self._local.connection = connection
                with self._lock:
                    self._open.add(connection)
            if connection.sock is None:
                try:
                    self._connect(connection)
                except ServerUnavailable:
                    self._drop(connection)
                    raise
                reused = False
            try:
                connection.request(method, target, body=body, headers=all_headers)
                raw = connection.getresponse()
                response = Response(raw.status, raw.reason, raw.headers, raw.read())
                if raw.will_close:
                    self._drop(connection)
                break
            except _STALE as exc:
                self._drop(connection)
                if reused and attempt == 1:
                    continue
                raise self._unavailable(exc, connected=True) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise self._unavailable(exc, connected=True) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _connect(self, connection: http.client.HTTPConnection) -> None:
        try:
            connection.connect()
        except OSError as exc:  # refused, unknown host, TLS failure, time-out
            connection.close()
            raise self._unavailable(exc, connected=False) from None

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            self._open.discard(connection)

    def _unavailable(self, exc: BaseException, *, connected: bool) -> ServerUnavailable:
        if isinstance(exc, TimeoutError | socket.timeout):
            return ServerUnavailable(f"the mlyard server at {self.url} did not answer in time")
        if isinstance(exc, ssl.SSLError):
            return ServerUnavailable(f"the TLS handshake with {self.url} failed: {exc}")
        if not connected or isinstance(exc, ConnectionRefusedError | socket.gaierror):
            return ServerUnavailable(
                f"cannot reach the mlyard server at {self.url}: start it with `mlyard server` "
                "(or point MLYARD_URL at a running one)"
            )
        return ServerUnavailable(f"lost the connection to the mlyard server at {self.url}: {exc}")


class _Resource:
    def __init__(self, client: Client) -> None:
        self._c = client


class Runs(_Resource):
    def list(self, *, pipeline: str | None = None, state: str | None = None,
             limit: int | None = None) -> builtins.list[RunSummary]:
        """Recent runs, newest first."""
        rows = self._c.get(f"{API}/runs", pipeline=pipeline, state=state, limit=limit)
        return [RunSummary.from_dict(r) for r in rows]

    def get(self, run_id: int, *, wait: float = 0.0) -> RunView:
        """A run with its stages, jobs and steps. With `wait` (seconds, at most 60): answered as soon as the
        run ends, or after `wait` seconds with the run as it is then (a long poll, no sleeping client)."""
        return RunView.from_dict(self._c.get(f"{API}/runs/{run_id}", wait=min(wait, 60.0) if wait > 0 else None))

    def latest(self, pipeline: str) -> RunView | None:
        """The newest run of a pipeline, in full (None when it has none)."""
        runs = self.list(pipeline=pipeline)
        return self.get(runs[-1].id) if runs else None

    def cancel(self, run_id: int) -> RunView:
        return RunView.from_dict(self._c.post(f"{API}/runs/{run_id}/cancel"))

    def permit(self, run_id: int) -> PermitResult:
        """Grant every protected resource the run waits for."""
        return PermitResult.from_dict(self._c.post(f"{API}/runs/{run_id}/permit"))

    def decide(self, run_id: int, action: str, comment: str = "") -> ApprovalResult:
        """`approve` or `reject` the approvals the run waits for."""
        if action not in ("approve", "reject"):
            raise ValueError(f"action must be approve or reject, not {action!r}")
        return ApprovalResult.from_dict(self._c.post(f"{API}/runs/{run_id}/{action}", {"comment": comment}))

    def logs(self, run_id: int, *, step: str | None = None) -> str:
        return self._c.text(f"{API}/runs/{run_id}/logs", step=step)

    def follow_logs(self, run_id: int, *, step: str | None = None) -> Iterator[str]:
        return self._c.stream_lines(f"{API}/runs/{run_id}/logs", follow="true", step=step)

    def log_document(self, run_id: int, *, step: str | None = None) -> RunLogs:
        """The run's log as jobs, steps and timestamped lines."""
        return RunLogs.from_dict(self._c.get(f"{API}/runs/{run_id}/logs", format="json", step=step))

    def artifacts(self, run_id: int) -> builtins.list[ArtifactView]:
        return [ArtifactView.from_dict(a) for a in self._c.get(f"{API}/runs/{run_id}/artifacts")]

    def artifact(self, run_id: int, name: str) -> bytes:
        """One artifact as a .tar.gz."""
        return self._c.get_bytes(f"{API}/runs/{run_id}/artifacts/{name}")

    def tests(self, run_id: int) -> RunTests:
        return RunTests.from_dict(self._c.get(f"{API}/runs/{run_id}/tests"))


class Pipelines(_Resource):
    def list(self, *, folder: str | None = None) -> builtins.list[PipelineView]:
        return [PipelineView.from_dict(r) for r in self._c.get(f"{API}/pipelines", folder=folder)]

    def get(self, name: str) -> PipelineView:
        """A pipeline with its variables, permissions and recent runs."""
        return PipelineView.from_dict(self._c.get(f"{API}/pipelines/{name}"))

    def create(self, name: str, *, repo: str, yaml: str, folder: str = "") -> PipelineView:
        body = {"name": name, "repo": repo, "yaml": yaml, "folder": folder}
        return PipelineView.from_dict(self._c.post(f"{API}/pipelines", body))

    def delete(self, name: str) -> PipelineView:
        return PipelineView.from_dict(self._c.delete(f"{API}/pipelines/{name}"))

    def run(self, name: str, parameters: dict[str, Any] | None = None, *, branch: str | None = None,
            commit: str | None = None, variables: dict[str, str] | None = None) -> RunBrief:
        """Queue a run by hand."""
        body: dict[str, Any] = {"parameters": parameters or {}}
        if branch is not None or commit is not None or variables is not None:
            body = {"branch": branch, "commit": commit, **body, "variables": variables or {}}
        return RunBrief.from_dict(self._c.post(f"{API}/pipelines/{name}/runs", body))

    def permit(self, name: str, resource: str) -> PipelinePermission:
        """Allow the pipeline to use a protected resource, `KIND:NAME` (admin)."""
        return PipelinePermission.from_dict(self._c.post(f"{API}/pipelines/{name}/permissions", {"resource": resource}))

    def set_variable(self, pipeline: str, name: str, value: str, *, secret: bool = False) -> VariableView:
        body = {"value": value, "secret": secret}
        return VariableView.from_dict(self._c.request("PUT", f"{API}/pipelines/{pipeline}/variables/{name}", json=body))

    def delete_variable(self, pipeline: str, name: str) -> VariableView:
        return VariableView.from_dict(self._c.delete(f"{API}/pipelines/{pipeline}/variables/{name}"))


class Repos(_Resource):
    def list(self) -> builtins.list[RepoView]:
        return [RepoView.from_dict(r) for r in self._c.get(f"{API}/repos")]

    def get(self, name: str) -> RepoView:
        """A repository with its branches, tags and last commit."""
        return RepoView.from_dict(self._c.get(f"{API}/repos/{name}"))

    def create(self, name: str, *, default_branch: str | None = None, allow_force_push: bool = False) -> RepoView:
        body = {"name": name, "default_branch": default_branch, "allow_force_push": allow_force_push}
        return RepoView.from_dict(self._c.post(f"{API}/repos", body))

    def update(self, name: str, *, allow_force_push: bool | None = None,
               default_branch: str | None = None) -> RepoView:
        body = {"allow_force_push": allow_force_push, "default_branch": default_branch}
        return RepoView.from_dict(self._c.patch(f"{API}/repos/{name}", body))

    def delete(self, name: str) -> RepoView:
        return RepoView.from_dict(self._c.delete(f"{API}/repos/{name}"))

    def events(self, name: str, *, after: int = 0, limit: int = 100) -> builtins.list[PushEvent]:
        """Push events of the repository, oldest first."""
        return [PushEvent.from_dict(e) for e in self._c.get(f"{API}/repos/{name}/events", after=after, limit=limit)]


class Environments(_Resource):
    def list(self) -> builtins.list[EnvironmentView]:
        return [EnvironmentView.from_dict(e) for e in self._c.get(f"{API}/environments")]

    def get(self, name: str) -> EnvironmentView:
        return EnvironmentView.from_dict(self._c.get(f"{API}/environments/{name}"))

    def create(self, name: str, *, mlflow_tracking_uri: str = "") -> EnvironmentView:
        body = {"name": name, "mlflow_tracking_uri": mlflow_tracking_uri}
        return EnvironmentView.from_dict(self._c.post(f"{API}/environments", body))

    def update(self, name: str, *, approval_required: bool | None = None,
               notify_webhook: str | None = None) -> EnvironmentView:
        """Change checks and notifications (None: unchanged; an empty webhook removes it)."""
        body = {"approval_required": approval_required, "notify_webhook": notify_webhook}
        return EnvironmentView.from_dict(self._c.patch(f"{API}/environments/{name}", body))

    def rotate_token(self, name: str) -> VariableGroupView:
        """A new token in the environment's variable group; the previous one is revoked."""
        return VariableGroupView.from_dict(self._c.post(f"{API}/environments/{name}/rotate-token"))


class Users(_Resource):
    def list(self) -> builtins.list[UserView]:
        return [UserView.from_dict(u) for u in self._c.get(f"{API}/users")]

    def create(self, username: str, *, admin: bool = False) -> UserView:
        return UserView.from_dict(self._c.post(f"{API}/users", {"username": username, "admin": admin}))


class Tokens(_Resource):
    def list(self, *, all_users: bool = False) -> builtins.list[TokenView]:
        rows = self._c.get(f"{API}/tokens", all="true" if all_users else None)
        return [TokenView.from_dict(t) for t in rows]

    def create(self, name: str, scopes: builtins.list[str], *, expires_in: str | None = None,
               user: str | None = None) -> TokenView:
        """A new token; its secret is in `.token` (shown once)."""
        body = {"name": name, "scopes": scopes, "expires_in": expires_in, "user": user}
        return TokenView.from_dict(self._c.post(f"{API}/tokens", body))

    def revoke(self, token: str) -> TokenView:
        return TokenView.from_dict(self._c.delete(f"{API}/tokens/{token}"))


class Jobs(_Resource):
    """Entry points run in an environment's workspace (not pipeline jobs)."""

    def start(self, *, env: str, app: str, branch: str, entrypoint: str,
              args: builtins.list[str] | None = None) -> WorkspaceJobView:
        body: dict[str, Any] = {"env": env, "app": app, "branch": branch, "entrypoint": entrypoint}
        if args is not None:
            body["args"] = args
        return WorkspaceJobView.from_dict(self._c.post(f"{API}/jobs", body))

    def list(self, *, env: str | None = None, app: str | None = None,
             limit: int = 50) -> builtins.list[WorkspaceJobView]:
        rows = self._c.get(f"{API}/jobs", env=env, app=app, limit=limit)
        return [WorkspaceJobView.from_dict(r) for r in rows]

    def get(self, job_id: int) -> WorkspaceJobView:
        return WorkspaceJobView.from_dict(self._c.get(f"{API}/jobs/{job_id}"))

    def logs(self, job_id: int) -> str:
        return self._c.text(f"{API}/jobs/{job_id}/logs")

    def cancel(self, job_id: int) -> WorkspaceJobView:
        return WorkspaceJobView.from_dict(self._c.post(f"{API}/jobs/{job_id}/cancel", {}))

    def follow_logs(self, job_id: int) -> Iterator[str]:
        return self._c.stream_lines(f"{API}/jobs/{job_id}/logs", follow="true")


class Models(_Resource):
    """The model registry of an environment."""

    def list(self, env: str) -> Any:
        return self._c.get(f"{API}/models", env=env)

    def get(self, name: str, env: str) -> Any:
        return self._c.get(f"{API}/models/{name}", env=env)

    def stage(self, name: str, version: str, stage: str, *, env: str, reason: str = "") -> Any:
        body = {"stage": stage, "reason": reason}
        return self._c.request("POST", f"{API}/models/{name}/versions/{version}/stage", json=body, params={"env": env})

    def history(self, name: str, env: str) -> Any:
        return self._c.get(f"{API}/models/{name}/history", env=env)

    def rollback(self, name: str, *, env: str, reason: str) -> Any:
        return self._c.request("POST", f"{API}/models/{name}/rollback", json={"reason": reason}, params={"env": env})

    def version(self, name: str, *, env: str, version: str | None = None, stage: str | None = None) -> Any:
        return self._c.get(f"{API}/models/{name}/version", env=env, version=version, stage=stage)

    def tag(self, name: str, version: str, tags: dict[str, str], *, env: str) -> Any:
        path = f"{API}/models/{name}/versions/{version}/tags"
        return self._c.request("POST", path, json={"tags": tags}, params={"env": env})


class Deployments(_Resource):
    def create(self, body: dict[str, Any]) -> DeploymentView:
        """Deploy (or redeploy) a model version: {"env", "model", "version" | "stage", "target", "cpu", "memory"}."""
        return DeploymentView.from_dict(self._c.post(f"{API}/deployments", body))

    def list(self, *, env: str | None = None) -> builtins.list[DeploymentView]:
        return [DeploymentView.from_dict(d) for d in self._c.get(f"{API}/deployments", env=env)]

    def get(self, env: str, model: str) -> DeploymentView:
        return DeploymentView.from_dict(self._c.get(f"{API}/deployments/{env}/{model}"))

    def logs(self, env: str, model: str) -> str:
        return self._c.text(f"{API}/deployments/{env}/{model}/logs")

    def delete(self, env: str, model: str) -> DeploymentView:
        return DeploymentView.from_dict(self._c.delete(f"{API}/deployments/{env}/{model}"))

    def monitor(self, env: str, model: str, *, window: str = "24h") -> MonitorReportView:
        """The drift and quality report of a deployment over `window` (30m, 24h, 7d)."""
        return MonitorReportView.from_dict(self._c.get(f"{API}/deployments/{env}/{model}/monitor", window=window))

    def post_labels(self, env: str, model: str, labels: builtins.list[dict[str, Any]]) -> int:
        """Ground truth by request id: [{"request_id", "label", "row" (default 0)}]; returns how many were stored."""
        return int(self._c.post(f"{API}/deployments/{env}/{model}/labels", {"labels": labels})["accepted"])


class _Named(_Resource, Generic[V]):
    """A collection of named resources: create (or update), list, get, delete."""

    PATH = ""
    VIEW: type[V]

    def create(self, body: dict[str, Any]) -> V:
        return self.VIEW.from_dict(self._c.post(f"{API}/{self.PATH}", body))

    def list(self) -> builtins.list[V]:
        return [self.VIEW.from_dict(row) for row in self._c.get(f"{API}/{self.PATH}")]

    def get(self, name: str) -> V:
        return self.VIEW.from_dict(self._c.get(f"{API}/{self.PATH}/{name}"))

    def delete(self, name: str) -> V:
        return self.VIEW.from_dict(self._c.delete(f"{API}/{self.PATH}/{name}"))


class Connections(_Named[ConnectionView]):
    """Service connections: {"name", "type", "settings", "secrets", "update"} to create one."""

    PATH = "connections"
    VIEW = ConnectionView


class VariableGroups(_Named[VariableGroupView]):
    """Variable groups: {"name", "variables", "secrets", "update"} to create one."""

    PATH = "variable-groups"
    VIEW = VariableGroupView


def _error(response: Response) -> MlyardError:
    try:
        body = response.json()
        message = body.get("error") or response.reason_phrase
        errors = body.get("errors") or []
    except (ValueError, AttributeError):
        message, errors = (response.text.strip() or response.reason_phrase), []
    if response.status_code == 401 and "mlyard tokens" not in message:
        message += " (check MLYARD_TOKEN or the token in your CLI config; `mlyard init` writes one)"
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "60")
        return TooManyAttempts(message, retry_after=int(retry_after) if retry_after.isdigit() else 60)
    cls = _BY_STATUS.get(response.status_code, OperationFailed)
    return cls(message, errors=[e for e in errors if e != message])
