"""`/mlflow/<env>`: MLflow's own tracking server of each environment, behind mlyard's personal access tokens.

`MLFLOW_TRACKING_URI=<server>/mlflow/<env>` with `MLFLOW_TRACKING_TOKEN=<token>` (sent as `Authorization:
Bearer`) works from any machine. Each environment's server is MLflow's server app in a child process of
its own (`mlyard.registry.tracking_server`), started on the first request to the environment and reached
over a private Unix socket; this ASGI app checks the token and its scope, then streams the request and
the answer through (artifacts are proxied: `mlflow-artifacts:/` URIs, stored in the environment's
`mlartifacts/`). Why a process per environment rather than one MLflow app in mlyard's process:
docs/registry.md, "MLflow's tracking server".

Writes of the aliases `production` and `staging` (and legacy stage transitions) do not reach MLflow
as such: they become mlyard stage changes (`services.models.stage`), which hold the model's lock, mirror
the legacy stages and append to the model's history, so the invariant of docs/registry.md holds whoever
writes. Errors are answered in MLflow's JSON shape (`{"error_code": ..., "message": ...}`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx

from mlyard.api.deps import authenticated
from mlyard.errors import InvalidInput, MlyardError, NotFound, OperationFailed, PayloadTooLarge, TooManyAttempts
from mlyard.services import environments, models
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

if TYPE_CHECKING:
    from mlyard.registry.tracking_server import ServerZygote, TrackingServer, ZygoteStatus

log = logging.getLogger("mlyard.mlflow")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/mlflow/"
READ_SCOPE = "repo:read"  # GET, HEAD and MLflow's searches (POST)
WRITE_SCOPE = "pipelines:run"  # every other request: the scope that stages and deploys models
WARM_ENV = "MLYARD_REGISTRY_WARM"  # = tracking_server.WARM_ENV: environments warmed at start (default 1; 0 = none)
WARM_LIMIT = 8
START_SECONDS = 180.0  # an environment's MLflow server has this long to answer its first /health
READY_POLL_SECONDS = 0.02  # how often a starting MLflow server is asked (a connect on a Unix socket: cheap)
PROXY_TIMEOUT = httpx.Timeout(900.0, connect=10.0)  # large artifacts stream for a while
MAX_JSON_BYTES = 64 * 1024  # the body of an alias or stage change, read by mlyard itself
MAX_REWRITE_BYTES = 16 * 1024**2  # a JSON answer whose local artifact paths are rewritten (larger: passed as is)
# What a client of MLflow's REST API calls; the web UI's /ajax-api and static files need a browser
# session mlyard does not give MLflow, and the AI gateway, assistant and jobs run code or hold secrets.
API_PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/")
OTHER_PATHS = frozenset({"/health", "/version"})
REFUSED_SEGMENTS = frozenset({"gateway", "gateway-proxy", "assistant", "jobs", "mcp", "prompt-optimization"})
READ_POSTS = frozenset({"search", "search-datasets", "get-latest-versions", "calculate-filter-correlation"})
ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"
TRANSITION_PATH = "/api/2.0/mlflow/model-versions/transition-stage"
STAGE_ALIASES = {"production": "Production", "staging": "Staging"}  # mlyard's stages (registry.versions.ALIASES)
ERROR_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "RESOURCE_DOES_NOT_EXIST", 409: "RESOURCE_ALREADY_EXISTS", 413: "INVALID_PARAMETER_VALUE",
               429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"transfer-encoding", b"upgrade"})  # fmt: skip
# Not passed to MLflow: the caller's token and cookies, and what MLflow's host and origin checks would
# misread behind a proxy (the request reaches MLflow from mlyard, on a socket).
_REQUEST_DROPPED = _HOP_BY_HOP | {b"host", b"authorization", b"cookie", b"origin", b"referer", b"forwarded", b"expect",
                                  b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"}  # fmt: skip
_RESPONSE_DROPPED = _HOP_BY_HOP | {b"server", b"date", b"set-cookie"}


class Unavailable(MlyardError):
    """The environment's MLflow server could not start or be reached (MLflow's clients retry a 503)."""

    http_status = 503


@dataclass(frozen=True)
class MlflowRequest:
    env: str
    path: str  # MLflow's path, after /mlflow/<env>
    raw_path: bytes  # the same, as the client encoded it
    method: str
    query: bytes
    write: bool


def parse_request(scope: Scope) -> MlflowRequest:
    """Split `/mlflow/<env>/<MLflow path>`; NotFound for paths this mount does not pass to MLflow."""
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    env, _, rest = path[len(PREFIX) :].partition("/") if path.startswith(PREFIX) else ("", "", "")
    rest = "/" + rest
    if not env:
        raise NotFound("no environment in the path: use <server>/mlflow/<env> as MLFLOW_TRACKING_URI")
    allowed = rest in OTHER_PATHS or rest.startswith(API_PREFIXES)
    if not allowed or REFUSED_SEGMENTS.intersection(rest.split("/")):
        raise NotFound(f"{rest} is not served: mlyard passes MLflow's REST API ({', '.join(API_PREFIXES)}) through")
    method = scope["method"].upper()
    search = method == "POST" and rest.rsplit("/", 1)[-1] in READ_POSTS
    write = method not in ("GET", "HEAD", "OPTIONS") and not search
    # The client's encoding of the path, after /mlflow/<env> (environment names are plain ASCII).
    raw_rest = raw[len(PREFIX) + len(env) :] if raw.startswith(f"{PREFIX}{env}/".encode()) else rest.encode()
    return MlflowRequest(env, rest, raw_rest, method, scope.get("query_string", b""), write)


def error_message(status: int, message: str) -> bytes:
    return json.dumps({"error_code": ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": message}).encode()


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body too large: an alias or stage change may have at most {limit} bytes")
        chunks.append(chunk)
        more = bool(message.get("more_body"))
    return b"".join(chunks)


class BodyTooLarge(PayloadTooLarge):
    """An alias or stage change larger than MAX_JSON_BYTES (answered here; BodyLimit answers the others)."""


class _ClientGone(Exception):
    pass


@dataclass
class _Running:
    uri: str
    server: TrackingServer
    client: httpx.AsyncClient


def _credentials_of(scope: Scope) -> tuple[str | None, str]:
    """A request's Authorization header and client address."""
    header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"authorization"), None)
    client = scope.get("client")
    return header, client[0] if client else ""


class MlflowMount:
    """The ASGI app mounted at /mlflow; `close()` (from the app's lifespan) stops the MLflow servers."""

    def __init__(
        self, platform: Platform, *, mark: tuple[str, str] | None = None, zygote: ServerZygote | None = None
    ) -> None:
        self.platform = platform
        self.mark = mark  # an environment variable of the children, so a restarted server kills orphans
        self._running: dict[str, _Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # The fork server of the environments' MLflow servers (tracking_server.ServerZygote): `mlyard server`
        # starts it before its own imports, else the first start does; its folder holds the sockets.
        self._zygote = zygote
        self._zygote_failed = False  # one exited before it was warm: MLflow servers start cold from then on
        self._closed = False
        self._socket_dir: Path | None = zygote.folder if zygote is not None else None
        self._folder_lock = threading.Lock()
        self._warming: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, once it started (start_warming)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        try:
            principal = await authenticated(self.platform, *_credentials_of(scope))
            request = parse_request(scope)
            principal.require(WRITE_SCOPE if request.write else READ_SCOPE)
            principal.require_environment(request.env)
            environment = await asyncio.to_thread(environments.get_environment, self.platform, request.env)
            running = await self._server(request.env, environment["mlflow_tracking_uri"])
            if request.path in (ALIAS_PATH, TRANSITION_PATH) and request.method in ("POST", "DELETE"):
                await self._stage_change(running, principal, request, receive, send)
            else:
                # MLflow's answers, never the artifacts it serves (a JSON artifact is the user's data)
                api = not request.path.startswith("/api/2.0/mlflow-artifacts/")
                local = _local_artifacts(running.server.spec.artifacts_dir) if api else None
                await _proxy(running.client, request, scope, _stream(receive), send, local=local)
        except _ClientGone:
            return
        except BodyTooLarge as exc:
            await send_json(send, 413, error_message(413, exc.message))
        except PayloadTooLarge:
            raise  # BodyLimit answers 413 with the limit and how to change it
        except MlyardError as exc:
            if exc.http_status >= 500:
                log.error("/mlflow: %s", exc.message)
            headers = [(b"www-authenticate", b'Bearer realm="mlyard"')] if exc.http_status == 401 else []
            if isinstance(exc, TooManyAttempts):
                headers = [(b"retry-after", str(exc.retry_after).encode())]
            await send_json(send, exc.http_status, error_message(exc.http_status, exc.message), headers)

    async def _server(self, env: str, tracking_uri: str) -> _Running:
        """The environment's running MLflow server, started (and waited for) on first use or after it died."""
        lock = self._locks.setdefault(env, asyncio.Lock())
        async with lock:
            running = self._running.get(env)
            if running is not None and running.uri == tracking_uri and running.server.running():
                return running
            if running is not None:
                log.warning("the MLflow server of environment %r %s: restarting it", env, running.server.exit_report())
                await self._stop(env)
            server = await asyncio.to_thread(self._start, env, tracking_uri)
            client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(server.spec.socket)),
                base_url="http://localhost",
                timeout=PROXY_TIMEOUT,
            )
            self._running[env] = running = _Running(tracking_uri, server, client)
            try:
                await _wait_ready(env, running)
            except BaseException:
                await self._stop(env)  # the next request starts a fresh one
                raise
            return running

    def _start(self, env: str, tracking_uri: str) -> TrackingServer:
        from mlyard.registry.tracking_server import ZYGOTE_LOG, TrackingServer, TrackingServerSpec

        extra = (self.mark,) if self.mark else ()
        socket_dir, zygote = self._zygote_for_start()
        spec = TrackingServerSpec.for_environment(env, tracking_uri, socket_dir, extra_env=extra)
        if zygote is not None:
            forked = zygote.fork(spec)
            if forked is not None and forked.proc is not None:
                log.info("the MLflow server of environment %r is process %d, forked by the zygote %d", env,
                         forked.proc.pid, zygote.pid)  # fmt: skip
                return forked
        if zygote is not None and zygote.failed():
            self._zygote_failed = True
            log.warning("the MLflow servers' zygote exited before it was warm (see %s): environment %r's MLflow "
                        "server starts as a process of its own, and so will the next ones",
                        zygote.folder / ZYGOTE_LOG, env)  # fmt: skip
        server = TrackingServer(spec)
        try:
            server.start()
        except OSError as exc:
            raise OperationFailed(f"could not start the MLflow server of environment {env!r}: {exc}") from exc
        return server

    def start_warming(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None] | None:
        """Start in the background the MLflow servers of the first `MLYARD_REGISTRY_WARM` environments (default
        1: `dev` in a new home) and, from now on, that of each new environment: a first request then finds it
        running (the server's lifespan calls this). Each costs a process and seconds of CPU: 0 turns it off.
        Returns the task that warms the first ones (None: nothing to warm)."""
        self._loop = loop
        count = warm_count()
        if not count:
            return None

        def warm_new(env: str) -> None:
            asyncio.run_coroutine_threadsafe(self._warm([env]), loop)

        self.platform.environment_listeners.append(warm_new)
        names = [e["name"] for e in environments.list_environments(self.platform)][:count]
        self._warming = loop.create_task(self._warm(names))
        return self._warming

    async def _warm(self, names: list[str]) -> None:
        from mlyard.registry.store import is_remote

        for env in names:
            try:
                environment = await asyncio.to_thread(environments.get_environment, self.platform, env)
                uri = environment["mlflow_tracking_uri"]
                if is_remote(uri):
                    continue
                loop = asyncio.get_running_loop()
                began = loop.time()
                await self._server(env, uri)
                log.info("registry warm: the MLflow server of environment %r is ready (%.1f s)", env,
                         loop.time() - began)  # fmt: skip
            except (MlyardError, OSError) as exc:
                log.warning("could not warm the MLflow server of environment %r: %s", env, exc)

    def socket_for(self, env: str, tracking_uri: str) -> Path | None:
        """The Unix socket of the MLflow server of `env` (an embedded store), started and waited for if needed,
        for the server's own registry calls (services.models); None before the server started, for a remote
        MLflow, or on the event loop's own thread (which cannot wait for itself). Called from worker threads."""
        from mlyard.registry.store import is_remote

        loop = self._loop
        if loop is None or loop.is_closed() or is_remote(tracking_uri):
            return None
        with contextlib.suppress(RuntimeError):  # no running loop in this thread: a worker thread
            if asyncio.get_running_loop() is loop:
                return None
        future = asyncio.run_coroutine_threadsafe(self._server(env, tracking_uri), loop)
        try:
            return future.result(START_SECONDS + 30).server.spec.socket
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Unavailable(f"the MLflow server of environment {env!r} did not start in time; try again") from None

    def _zygote_for_start(self) -> tuple[Path, ServerZygote | None]:
        """The sockets' folder and the zygote to fork from: the one the server started with, or a new one when
        there is none yet (MLYARD_REGISTRY_WARM=0), it died, or it carries another mark; None after one failed
        (or once closed). Called from worker threads: environments start in parallel."""
        from mlyard.registry.tracking_server import ServerZygote, remove_socket_folder, socket_folder

        stale = None
        with self._folder_lock:
            if self._socket_dir is None:
                self._socket_dir = socket_folder()
            zygote = self._zygote
            if zygote is not None and (zygote.mark != self.mark or zygote.failed() or not zygote.alive()):
                stale, zygote, self._zygote = zygote, None, None
                self._zygote_failed = self._zygote_failed or stale.failed()
            if zygote is None and not self._zygote_failed and not self._closed:
                try:
                    zygote = self._zygote = ServerZygote.start(self._socket_dir, mark=self.mark)
                    log.info("started the MLflow servers' zygote (process %d)", zygote.pid)
                except OSError as exc:
                    log.warning("could not start the MLflow servers' zygote: %s", exc)
            folder = self._socket_dir
        if stale is not None:
            stale.close()
            if stale.folder != folder:
                remove_socket_folder(stale.folder)
        return folder, zygote

    def zygote_status(self) -> ZygoteStatus | None:
        """The MLflow servers' zygote (/health): None when none started yet (MLYARD_REGISTRY_WARM=0)."""
        zygote = self._zygote
        return zygote.status() if zygote is not None else None

    def running_environments(self) -> list[str]:
        """The environments whose MLflow server process runs now (`GET /status`)."""
        return sorted(env for env, running in list(self._running.items()) if running.server.running())

    def own_processes(self) -> frozenset[int]:
        """This server's MLflow processes so far (started with its mark): never orphans."""
        pids = {running.server.proc.pid for running in self._running.values() if running.server.proc is not None}
        if self._zygote is not None:
            pids.add(self._zygote.pid)
        return frozenset(pids)

    def _close_zygote(self) -> None:
        with self._folder_lock:
            self._closed = True
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()

    async def _stop(self, env: str) -> None:
        running = self._running.pop(env, None)
        if running is not None:
            await running.client.aclose()
            await asyncio.to_thread(running.server.stop)

    async def close(self) -> None:
        self._loop = None  # the server's own registry calls use MLflow in-process from now on (socket_for)
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warming
        for env in list(self._running):
            await self._stop(env)
        await asyncio.to_thread(self._close_zygote)  # after its forks: it reports their exit codes
        if self._socket_dir is not None:
            from mlyard.registry.tracking_server import remove_socket_folder

            remove_socket_folder(self._socket_dir)
            self._socket_dir = None

    async def _stage_change(
        self, running: _Running, principal: Principal, request: MlflowRequest, receive: Receive, send: Send
    ) -> None:
        """`production`/`staging` alias writes and stage transitions become mlyard stage changes; other
        aliases go to MLflow unchanged."""
        body = await read_body(receive, MAX_JSON_BYTES)
        fields = _fields(body, request.query)
        name, alias = str(fields.get("name", "")), str(fields.get("alias", ""))
        if request.path == ALIAS_PATH and alias not in STAGE_ALIASES:  # e.g. `champion`: MLflow's own write
            status, content = await asyncio.to_thread(self._locked_alias_write, running, request, name, body)
            await send_json(send, status, content)
            return
        if not name:
            raise InvalidInput("missing value for required parameter 'name'")
        reason = f"through MLflow's API ({request.method} {request.path.rsplit('/', 1)[-1]})"
        if request.path == TRANSITION_PATH:
            version, stage = str(fields.get("version", "")), str(fields.get("stage", ""))
        elif request.method == "POST":
            version, stage = str(fields.get("version", "")), STAGE_ALIASES[alias]
        else:  # the version that holds the alias loses it: production -> Archived, staging -> None
            held = await asyncio.to_thread(
                models.version_for, self.platform, request.env, name, stage=STAGE_ALIASES[alias]
            )
            version, stage = str(held["version"]), "Archived" if alias == "production" else "None"
        await asyncio.to_thread(
            models.stage, self.platform, principal, request.env, name, version, stage, reason=reason
        )
        if request.path == ALIAS_PATH:
            await send_json(send, 200, b"{}")
            return
        params = {"name": name, "version": version}
        answer = await running.client.get("/api/2.0/mlflow/model-versions/get", params=params)
        await send_json(send, answer.status_code, answer.content)


    def _locked_alias_write(
        self, running: _Running, request: MlflowRequest, name: str, body: bytes
    ) -> tuple[int, bytes]:
        """Pass an alias write to MLflow under the model's lock: MLflow does not serialise alias writes
        (concurrent ones fail with a UNIQUE constraint error), mlyard's stage changes hold the same lock."""
        registry = models.registry(self.platform, request.env)
        target = "http://localhost" + request.path + ("?" + request.query.decode("latin-1") if request.query else "")
        headers = {"content-type": "application/json"}
        with registry.model_lock(name), httpx.Client(transport=httpx.HTTPTransport(uds=str(running.server.spec.socket)),
                                                     timeout=PROXY_TIMEOUT) as client:  # fmt: skip
            try:
                answer = client.request(request.method, target, content=body, headers=headers)
            except httpx.TransportError as exc:
                where = f"the MLflow server of environment {request.env!r}"
                raise Unavailable(f"{where} is not reachable ({exc!r}); try again") from None
        return answer.status_code, answer.content


def warm_count() -> int:
    from mlyard.registry.tracking_server import warm_count as configured

    count = configured()
    if count is None:
        log.warning("%s=%r is not a number from 0 to %d: using 1", WARM_ENV, os.environ.get(WARM_ENV), WARM_LIMIT)
        return 1
    return count


def _fields(body: bytes, query: bytes) -> dict[str, Any]:
    """The parameters of a JSON body (POST, and DELETE as MLflow's client sends it) or of the query."""
    found: dict[str, Any] = {key: values[0] for key, values in parse_qs(query.decode("latin-1")).items()}
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            raise InvalidInput("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        found.update(data)
    return found


async def _wait_ready(env: str, running: _Running) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_SECONDS
    while loop.time() < deadline:
        if not running.server.running():
            raise Unavailable(f"the MLflow server of environment {env!r} {running.server.exit_report()}")
        with contextlib.suppress(httpx.TransportError):
            if (await running.client.get("/health", timeout=5)).status_code == 200:
                return
        await asyncio.sleep(READY_POLL_SECONDS)
    raise Unavailable(f"the MLflow server of environment {env!r} did not answer within {START_SECONDS:g}s; try again")


async def _stream(receive: Receive) -> AsyncIterator[bytes]:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        yield message.get("body", b"")
        more = bool(message.get("more_body"))


def _local_artifacts(folder: Path) -> re.Pattern[bytes]:
    """Where the environment's own processes (workspace jobs on its SQLite store) put artifacts: the folder
    MLflow's server also serves as `mlflow-artifacts:/`, as a `file://` URI or a path starting a JSON string."""
    return re.compile(rb'(?<=")(?:file://)?' + re.escape(str(folder.resolve()).encode()) + rb'(/|")')


def rewrite_artifacts(body: bytes, local: re.Pattern[bytes]) -> bytes:
    """The same answer with the store's local artifact locations as the `mlflow-artifacts:/` URIs they are
    served at, so a client on another machine (a remote agent, a sandboxed step) downloads them over HTTP."""
    return local.sub(lambda m: b"mlflow-artifacts:/" + (b"" if m.group(1) == b"/" else m.group(1)), body)


async def _proxy(client: httpx.AsyncClient, request: MlflowRequest, scope: Scope, body: AsyncIterator[bytes],
                 send: Send, *, local: re.Pattern[bytes] | None = None) -> None:  # fmt: skip
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in _REQUEST_DROPPED]
    target = request.raw_path + (b"?" + request.query if request.query else b"")
    outgoing = client.build_request(request.method, "http://localhost" + target.decode("latin-1"), headers=headers,
                                    content=body)  # fmt: skip
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.TransportError as exc:
        where = f"the MLflow server of environment {request.env!r}"
        raise Unavailable(f"{where} is not reachable ({exc!r}); try again") from None
    try:
        kept = [(k, v) for k, v in answer.headers.raw if k.lower() not in _RESPONSE_DROPPED]
        chunks = answer.aiter_raw()
        json_answer = answer.headers.get("content-type", "").startswith("application/json")
        if local is not None and json_answer and not answer.headers.get("content-encoding"):
            head: list[bytes] = []
            size = 0
            async for chunk in chunks:
                head.append(chunk)
                size += len(chunk)
                if size > MAX_REWRITE_BYTES:
                    break
            else:  # the whole answer: rewritten, with its new length
                whole = rewrite_artifacts(b"".join(head), local)
                kept = [(k, v) for k, v in kept if k.lower() != b"content-length"]
                kept.append((b"content-length", str(len(whole)).encode()))
                await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
                await send({"type": "http.response.body", "body": whole})
                return
            await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
            for chunk in head:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await answer.aclose()
