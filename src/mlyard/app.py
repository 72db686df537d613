"""Composition root: `create_app(settings)` builds the ASGI app (API, web UI, git hosting) and its lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from mlyard import __version__
from mlyard.api import PREFIX as API_PREFIX
from mlyard.api import errors as api_errors
from mlyard.api.deps import current_principal
from mlyard.api.headers import SecurityHeaders
from mlyard.api.limits import BodyLimit, BodyLimits
from mlyard.api.mlflow_mount import MlflowMount
from mlyard.api.routes import agent as agent_routes
from mlyard.api.routes import databricks as databricks_routes
from mlyard.api.routes import deployments as deployments_routes
from mlyard.api.routes import environments as environments_routes
from mlyard.api.routes import identity as identity_routes
from mlyard.api.routes import models as models_routes
from mlyard.api.routes import pipelines as pipelines_routes
from mlyard.api.routes import repos as repos_routes
from mlyard.api.routes import resources as resources_routes
from mlyard.api.routes import workspace_jobs as workspace_jobs_routes
from mlyard.background.endpoints import FrontProxies
from mlyard.background.local_agents import MARK_VARIABLE, LocalAgents, kill_orphans
from mlyard.ci.orchestrator import Orchestrator
from mlyard.db.engine import upgrade
from mlyard.errors import AuthenticationError, InvalidInput
from mlyard.git.smart_http import GitHttpApp
from mlyard.sandbox import Sandbox, SandboxUnavailable, bwrap_binary, probe, server_paths, server_step_sandbox
from mlyard.services import deployments, environment_groups, events, monitoring, runs, workspace_jobs
from mlyard.services.auth import Credentials, authenticate_header, local_agent_token, parse_authorization
from mlyard.services.jobs import JOB_TOKEN_PREFIX, job_counts, job_repo_access
from mlyard.services.platform import Platform, open_platform
from mlyard.settings import Settings, is_initialised
from mlyard.views import ServerStatusView, WarmPoolView
from mlyard.web import models_pages as web_models
from mlyard.web import pages as web_pages
from mlyard.web import repos_pages as web_repos

if TYPE_CHECKING:
    from mlyard.registry.tracking_server import ServerZygote

log = logging.getLogger("mlyard")


class Dispatcher:
    """Sends `/git/...` to git hosting and everything else (and the lifespan) to the API app."""

    def __init__(self, api: FastAPI, git: GitHttpApp, stopping: threading.Event, limits: BodyLimits) -> None:
        self.api = api
        self.git = git
        self.platform: Platform = api.state.platform
        self.stopping = stopping
        self._app = SecurityHeaders(BodyLimit(self._route, limits))

    def begin_shutdown(self) -> None:
        """Called on SIGTERM/SIGINT, before the HTTP server drains its connections: long-polling agent
        claims answer at once and the local agents stop claiming, so the drain is quick and no request
        is cancelled half-way."""
        self.stopping.set()
        self.platform.orchestrator.stop_event.set()
        self.platform.orchestrator.queue.notify_ready()  # the claims waiting for a job look again, and see the stop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    async def _route(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/git/"):
            await self.git(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def _start_job_sandboxes(platform: Platform, stopping: threading.Event) -> None:
    """The warm sandboxes of workspace jobs (docs/jobs.md), on a slot folder in `<home>/jobs`, as many as
    MLYARD_STEP_WARM says (none unsandboxed), once a first job ended: a server that runs no job pays nothing,
    and the first pipelines of a new home keep the idle core for the agents' sandboxes. A job's folder that a
    killed server left in a slot goes back to its place first (the pool removes old slots)."""
    from mlyard.agent.warm import SLOT_PREFIX, WarmPool

    root = platform.settings.home / "jobs"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for slot in sorted(root.glob(SLOT_PREFIX + "*"))[:16]:
            for folder in sorted(slot.iterdir())[:16]:
                place = root / folder.name
                if folder.name.isdigit() and place.is_symlink():
                    place.unlink()
                    folder.rename(place)
    except OSError as exc:
        log.warning("workspace jobs run cold: a job's folder could not leave an old slot of %s: %s", root, exc)
        return
    while not platform.job_ended.wait(1.0):
        if stopping.is_set():
            return
    try:
        sandbox = Sandbox.detect(hidden=server_paths(platform.settings.home),
                                 unsandboxed=platform.settings.unsandboxed_steps)  # fmt: skip
        platform.job_sandboxes = WarmPool.create(sandbox, root, variables={})  # a job has no step's TF_BUILD
    except (SandboxUnavailable, OSError) as exc:
        log.warning("workspace jobs run cold: their warm sandboxes could not start: %s", exc)


def _step_sandbox(settings: Settings, agents: int) -> Sandbox:
    """The sandbox of local agents' steps; refuses to start them unsandboxed unless --unsandboxed-steps."""
    sandbox = server_step_sandbox(settings.home, unsandboxed=settings.unsandboxed_steps, agents=agents)
    problem = probe(bwrap_binary())
    if sandbox.enabled:
        log.info("steps and `jobs run` entry points run in a bubblewrap sandbox (%s)", sandbox.bwrap)
    elif settings.unsandboxed_steps:
        log.warning("steps are NOT sandboxed: %s; local agents and `jobs run` entry points run them with the "
                    "server's OS rights (--unsandboxed-steps)", problem)  # fmt: skip
    else:
        log.warning("steps cannot be sandboxed: %s; `jobs run` entry points are refused unless the server is "
                    "started with --unsandboxed-steps", problem)  # fmt: skip
    return sandbox


def warm_pools(platform: Platform, mlflow_servers: MlflowMount, local_agents: LocalAgents | None,
               agents: int, *, sandboxed: bool) -> list[WarmPoolView]:  # fmt: skip
    """The server's warm pools as `GET /status` shows them: each with what it holds ready, its limit and the setting
    that sets it (docs/server.md, "Warm pools")."""
    return [*_mlflow_pools(mlflow_servers), _scoring_pool(platform),
            *_sandbox_pools(platform, local_agents, agents, sandboxed=sandboxed)]  # fmt: skip


def _mlflow_pools(mlflow_servers: MlflowMount) -> list[WarmPoolView]:
    """The zygote of the environments' MLflow servers, and those servers (one per environment in use)."""
    from mlyard.registry.tracking_server import WARM_ENV, warm_count

    count = warm_count()
    setting = f"{WARM_ENV}={count if count is not None else 1}"
    zygote = mlflow_servers.zygote_status()
    if zygote is None:
        first = WarmPoolView(name="mlflow-zygote", limit=1, setting=setting,
                             detail="not started: an environment's first registry use starts it")  # fmt: skip
    elif zygote.failed:
        first = WarmPoolView(name="mlflow-zygote", limit=1, setting=setting,
                             detail=f"process {zygote.pid} failed (zygote.log says why): MLflow servers start cold")
    else:
        first = WarmPoolView(name="mlflow-zygote", ready=int(zygote.warm), starting=int(not zygote.warm), limit=1,
                             setting=setting, detail=f"process {zygote.pid}: MLflow's server app imported once, each "
                             "environment's MLflow server a fork of it")  # fmt: skip
    envs = mlflow_servers.running_environments()
    detail = ", ".join(envs) if envs else "none yet: one per environment in use, the first ones started with the server"
    return [first, WarmPoolView(name="mlflow-servers", ready=len(envs), setting=setting, detail=detail)]


def _scoring_pool(platform: Platform) -> WarmPoolView:
    """The standby scoring processes, forked from their own zygote (docs/serving.md)."""
    pool = deployments.pool_status(platform)
    if pool is None:
        size = deployments.warm_pool_size()
        return WarmPoolView(name="scoring", limit=size, setting=f"{deployments.WARM_POOL_ENV}={size}",
                            detail="off" if size == 0 else "not started")  # fmt: skip
    detail = f"{pool.handed_out} handed to deployments, {pool.cold_starts} started cold"
    if not pool.started:
        detail = "starts once there is something to serve (a registered model or a deployment)"
    elif not pool.zygote_warm:
        detail = f"its zygote imports the scoring stack; {detail}"
    return WarmPoolView(name="scoring", ready=pool.warm, starting=pool.starting, limit=pool.size,
                        setting=f"{deployments.WARM_POOL_ENV}={pool.size}", detail=detail)  # fmt: skip


def _sandbox_pools(platform: Platform, local_agents: LocalAgents | None, agents: int, *,
                   sandboxed: bool) -> list[WarmPoolView]:  # fmt: skip
    """The warm step sandboxes of the local agents and the warm sandboxes of workspace jobs: sandboxes, so none
    when steps run unsandboxed."""
    from mlyard.agent.warm import SIZE_ENV, warm_size

    configured = warm_size()
    size = configured if sandboxed else 0
    off = "off" if sandboxed else "none: steps run unsandboxed (--unsandboxed-steps)"
    if not agents:
        steps_detail = "no local agents (--agents 0)"
    else:
        steps_detail = f"{size} per local agent, {agents} local agents" if size else off
    jobs = platform.job_sandboxes
    if not size:
        jobs_detail = off
    else:
        jobs_detail = "for workspace jobs" if jobs is not None else "started once a first workspace job ended"
    setting = f"{SIZE_ENV}={configured}"
    return [
        WarmPoolView(name="step-sandboxes", ready=local_agents.warm_sandboxes() if local_agents is not None else 0,
                     limit=size * agents, setting=setting, detail=steps_detail),
        WarmPoolView(name="job-sandboxes", ready=jobs.ready() if jobs is not None else 0, limit=size,
                     setting=setting, detail=jobs_detail),
    ]  # fmt: skip


def create_app(settings: Settings, *, agents: int = 2, mlflow_zygote: ServerZygote | None = None) -> Dispatcher:
    """The server's app; `mlflow_zygote` is the fork server of the environments' MLflow servers, started before
    the server's imports (`mlyard server`; mlyard.registry.tracking_server)."""
    if not is_initialised(settings.home):
        raise InvalidInput(f"{settings.home} is not an mlyard home: run `mlyard init` first")
    limits = BodyLimits.from_settings(settings)
    sandbox = _step_sandbox(settings, agents)
    upgrade(settings.db_url)
    platform = open_platform(settings)
    environment_groups.sync_all(platform)  # each environment's variable group, with this server's URL
    orchestrator = Orchestrator(platform)
    platform.orchestrator = orchestrator
    def wake_triggers(created: list[dict[str, Any]]) -> None:
        runs.on_push(platform, created)

    platform.push_listeners.append(wake_triggers)

    def record_push(push_id: str) -> None:
        events.ingest(platform, push_id)

    stopping = threading.Event()
    from mlyard.registry.tracking_server import server_mark  # the same mark as the early zygote's (mlyard.cli)

    mark = server_mark(settings.home)
    mlflow_servers = MlflowMount(platform, mark=mark, zygote=mlflow_zygote)  # /mlflow/<env>
    platform.mlflow_socket = mlflow_servers.socket_for  # the models API and stage changes use them too

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        marker = str(settings.home)
        killed = kill_orphans(marker, keep=mlflow_servers.own_processes())
        lost = orchestrator.recover_after_restart() + workspace_jobs.recover_after_restart(platform)
        if killed or lost:
            log.warning(
                "after a restart: %d job(s) marked failed (agent lost), %d process group(s) killed", lost, killed
            )
        recovered = events.recover(platform)
        if recovered:
            log.info("recorded %d push event(s) left by the previous server process", recovered)
        orchestrator.start()
        loop = asyncio.get_running_loop()
        warming = mlflow_servers.start_warming(loop)  # each environment's MLflow server, in the background
        fronts = FrontProxies(loop)
        # The warm scoring process imports MLflow, pandas and scikit-learn (seconds of CPU): it starts once the
        # first environment's MLflow server is ready, so that a first use of the registry does not wait for it.
        deployments.attach(platform, fronts, fill=False)
        pool_filling = loop.create_task(_fill_pool_after(platform, warming))
        routes_warming = loop.create_task(_warm_routes(api))
        recovery = threading.Thread(target=deployments.recover_after_restart, args=(platform,), daemon=True)
        recovery.start()
        supervisor = threading.Thread(
            target=deployments.supervise, args=(platform, stopping), name="mlyard-deployments", daemon=True
        )
        supervisor.start()
        retention = threading.Thread(target=monitoring.keep_retention, args=(platform, stopping),
                                     name="mlyard-retention", daemon=True)  # fmt: skip
        retention.start()
        local = None
        os.environ[MARK_VARIABLE] = marker  # what the server starts is found by it after a crash (kill_orphans)
        if agents > 0:
            local = LocalAgents(
                url=settings.url,
                token=local_agent_token(platform),
                work_dir=settings.home / "agents",
                count=agents,
                marker=marker,
                stop_event=stopping,
                sandbox=sandbox,
                hidden=[settings.home],
                on_exit=orchestrator.agent_exited,
            )
            local.start()
        api.state.local_agents = local  # /health counts their warm step sandboxes
        job_sandboxes = threading.Thread(target=_start_job_sandboxes, args=(platform, stopping),
                                         name="mlyard-job-sandboxes", daemon=True)  # fmt: skip
        job_sandboxes.start()
        yield
        stopping.set()  # also when the server is stopped without a signal (begin_shutdown not called)
        pool_filling.cancel()
        routes_warming.cancel()
        await asyncio.to_thread(deployments.stop_all, platform)
        await fronts.close_all()
        await mlflow_servers.close()
        deployments.attach(platform, None)
        if local is not None:
            local.stop()
        job_sandboxes.join(timeout=10)
        if platform.job_sandboxes is not None:
            platform.job_sandboxes.stop()
            platform.job_sandboxes = None
        orchestrator.stop()
        platform.close()

    api = FastAPI(
        title="mlyard",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        description="REST API of mlyard. Every route but /health needs a personal access token.",
    )
    api.state.platform = platform
    api_errors.install(api)

    # First: FastAPI builds the routing state of each included router when a request first passes it (0.35 s of
    # CPU for all of them); /health, matched before them, never needs it (_warm_routes builds it at start).
    @api.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        pool = deployments.pool_status(platform)  # the warm scoring processes (docs/serving.md)
        local_agents = getattr(api.state, "local_agents", None)  # the warm step sandboxes (docs/agent.md)
        warm_steps = local_agents.warm_sandboxes() if local_agents is not None else 0
        warm_jobs = platform.job_sandboxes.ready() if platform.job_sandboxes is not None else 0
        return {"ok": True, "status": "healthy", "version": __version__,
                "serving_pool": asdict(pool) if pool is not None else None,
                "mlflow_zygote": asdict(zygote) if (zygote := mlflow_servers.zygote_status()) is not None else None,
                "warm_step_sandboxes": warm_steps, "warm_job_sandboxes": warm_jobs}  # fmt: skip

    started_at = datetime.now(UTC)

    @api.get(f"{API_PREFIX}/status", tags=["health"], dependencies=[Depends(current_principal)])
    def status() -> dict[str, Any]:
        """The server, its local agents, its jobs and its warm pools, bounded and visible (`mlyard status`); in the
        thread pool (a query, the agents' status files)."""
        queued, running = job_counts(platform)
        local_agents = getattr(api.state, "local_agents", None)
        alive = local_agents.running() if local_agents is not None else 0
        return ServerStatusView(
            version=__version__, url=settings.url, started_at=started_at.isoformat(timespec="seconds"),
            uptime_seconds=round((datetime.now(UTC) - started_at).total_seconds(), 1), local_agents=alive,
            local_agents_configured=agents, jobs_queued=queued, jobs_running=running,
            pools=warm_pools(platform, mlflow_servers, local_agents, agents, sandboxed=sandbox.enabled),
        ).to_dict()  # fmt: skip

    for router in (
        identity_routes.router,
        repos_routes.router,
        environments_routes.router,
        pipelines_routes.router,
        resources_routes.router,
        agent_routes.router,
        models_routes.router,
        workspace_jobs_routes.router,
        deployments_routes.router,
    ):
        api.include_router(router, prefix=API_PREFIX)

    _install_docs(api, platform)
    api.mount("/databricks", databricks_routes.create_app(platform))  # Databricks' API per environment
    api.mount("/mlflow", mlflow_servers)
    # before the other pages: their router may end with a catch-all (the 404 page)
    api.include_router(web_models.router)  # models, deployments, monitoring
    api.include_router(web_repos.router)  # the file browser
    api.include_router(web_pages.router)

    async def not_found(request: Request, exc: Exception) -> Response:
        """An unknown path (or a method a path does not take): the API's JSON error under /api (and the
        other machine paths), a page elsewhere."""
        status = int(getattr(exc, "status_code", 404))
        if request.url.path.startswith(("/api/", "/git/", "/mlflow", "/databricks", "/health")):
            detail = getattr(exc, "detail", "Not Found")
            message = "no such API route; see /docs for the API" if detail == "Not Found" else str(detail)
            return api_errors.error_response(status, message, headers=getattr(exc, "headers", None))
        return await web_pages.not_found(request, status)

    api.add_exception_handler(404, not_found)
    api.add_exception_handler(405, not_found)

    def authorize(header: str | None, repo: str, write: bool, remote_addr: str) -> str:
        job_token = (parse_authorization(header) or Credentials(None, "")).token
        if job_token.startswith(JOB_TOKEN_PREFIX):  # a running job checks out its run's repository
            if not write and repo in job_repo_access(platform, job_token):
                return "pipeline-job"
            raise AuthenticationError("invalid job token: it expired with its job or is not for this repository")
        principal = authenticate_header(platform, header, remote_addr=remote_addr)
        principal.require("repo:write" if write else "repo:read")
        return principal.username

    git = GitHttpApp(
        repos_dir=settings.repos_dir,
        spool_dir=settings.spool_dir,
        authorize=authorize,
        after_push=record_push,
    )
    return Dispatcher(api, git, stopping, limits)


POOL_CHECK_SECONDS = 1.0  # how often a server with no model yet looks for one to keep a scoring process warm for
WARM_PATHS = (f"{API_PREFIX}/mlyard-warm-up", "/mlyard-warm-up")  # match no route: 404, nothing done


async def _warm_routes(api: FastAPI) -> None:
    """Build the routing state FastAPI builds on a first request (each included router's, 0.35 s of CPU) as the
    server starts rather than in a user's first request: requests that match no route, in-process."""
    for path in WARM_PATHS:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
                 "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80)}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            pass

        try:
            await api(scope, receive, send)
        except Exception as exc:  # a warm-up only: the first request builds it otherwise
            log.debug("warming the routes with %s failed: %s", path, exc)


async def _fill_pool_after(
    platform: Platform, warming: asyncio.Task[None] | None, to_serve: Callable[[Platform], bool] | None = None
) -> None:
    """Start the warm scoring pool once `warming` (the registry's warm-up) has ended, however it ended, and there
    is something it could serve: a model in a registry or a deployment (deployments.something_to_serve). A new
    home gets its process when its first model is registered (while model CI runs), not while its first
    pipelines need the CPU; a home with models gets it at once."""
    if warming is not None:
        await asyncio.wait({warming})
    if platform.deployments.pool is None:
        return
    while not await asyncio.to_thread(to_serve or deployments.something_to_serve, platform):
        await asyncio.sleep(POOL_CHECK_SECONDS)  # ends with the server (the lifespan cancels this task)
    deployments.fill_pool(platform)


def _install_docs(api: FastAPI, platform: Platform) -> None:
    """The OpenAPI schema, behind a token like every route but /health (401 with a Basic challenge, so a
    browser asks for user name and token once). Its readable form is the web UI's page `/docs`, rendered
    on the server: it works offline, unlike Swagger UI, whose assets come from a CDN.

    `Request` is imported at module level: with postponed annotations FastAPI resolves a route's
    annotations in the module's globals, and a local import made it read `request` as a query parameter."""

    def _check(request: Request) -> JSONResponse | None:
        addr = request.client.host if request.client else ""
        try:
            authenticate_header(platform, request.headers.get("authorization"), remote_addr=addr)
        except AuthenticationError as exc:
            return api_errors.error_response(401, exc.message, headers={"WWW-Authenticate": 'Basic realm="mlyard"'})
        return None

    @api.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        return _check(request) or JSONResponse(api.openapi())
