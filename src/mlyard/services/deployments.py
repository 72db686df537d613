"""Model CD to the `local` target: one scoring server per environment and model, behind a stable front port.

A deployment's scoring URI is `http://<host>:<front port>`, served by the server's front proxy
(mlyard.background.endpoints). Deploying starts a scoring server (`mlyard.serving.process`) on a
backend port, waits until it is healthy, switches the front to it, and then retires the previous
scoring server once its connections are gone (or after a grace period): clients see no failed request.
After a server restart, `recover_after_restart` starts every healthy deployment again on its front port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlyard.db.engine import transaction
from mlyard.db.tables import Deployment
from mlyard.errors import Conflict, InvalidInput, NotFound, OperationFailed
from mlyard.monitoring.table import INFERENCE_DIR
from mlyard.names import check_env_name, check_repo_name
from mlyard.registry.store import ARTIFACTS_DIR, is_remote, sqlite_path
from mlyard.services import audit, environments, models
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.services.runtime import Router
from mlyard.serving.limits import MEMORY_EXIT_CODE, available_cores, cores_for, thread_pool_env
from mlyard.serving.pool import MAX_SIZE, PoolStatus, WarmPool
from mlyard.serving.process import Endpoint, EndpointFailed, find_free_port, start_endpoint, stop_process_group

log = logging.getLogger("mlyard.deployments")

TARGETS = ("local",)
STARTING, HEALTHY, FAILED, STOPPED = "starting", "healthy", "failed", "stopped"
RESTART_LIMIT, RESTART_WINDOW = 3, 300.0  # more restarts than this within the window: the deployment fails
RESTART_LIMIT_ENV = "MLYARD_DEPLOYMENT_RESTART_LIMIT"  # the server's environment may lower or raise the limit
GRACE_SECONDS = 30.0  # the longest an old scoring server keeps serving connections opened before a switch
BIND_ATTEMPTS = 3  # ports tried when another process takes a scoring server's port while it starts
WARM_POOL_ENV = "MLYARD_SERVING_WARM_POOL"  # warm scoring processes kept ready (default 1; 0 = none, no zygote)
_LOG_LIMIT = 1024 * 1024
MAX_ENVIRONMENTS_CHECKED = 100  # something_to_serve looks at the first environments only
FOLDER = "deployments"  # <envs>/<env>/deployments/<model>: a deployment's log, inference table and labels


def attach(platform: Platform, router: Router | None, *, fill: bool = True) -> None:
    """Give the platform its front proxy and its warm pool of scoring processes (the server's lifespan
    does); None detaches both (and stops the pool's idle processes). `fill=False`: the pool's processes
    start at `fill_pool` (the server starts them once the registry is warm: both take seconds of CPU)."""
    platform.deployments.router = router
    pool, platform.deployments.pool = platform.deployments.pool, None
    if pool is not None:
        pool.close()
    if router is None:
        return
    size = warm_pool_size()
    if size:
        env = {**_child_env(), "PYTHONUNBUFFERED": "1", **thread_pool_env(1)}  # cpu=1, the default deployment
        log_file = platform.settings.envs_dir.parent / "serving-pool.log"
        platform.deployments.pool = pool = WarmPool(sys.executable, env, size=size, log_file=log_file)
        if fill:
            pool.fill_later()
        log.info("scoring warm pool: %d process(es), forked from one zygote (%s=0 turns it off)", size, WARM_POOL_ENV)


def fill_pool(platform: Platform) -> None:
    """Start the warm pool's processes in the background (nothing without a pool)."""
    pool = platform.deployments.pool
    if pool is not None:
        pool.fill_later()


def something_to_serve(platform: Platform) -> bool:
    """Whether a warm scoring process could serve soon: a deployment exists, or an environment's registry holds
    a registered model (a remote registry counts as one). Read from the SQLite stores directly (read-only, one
    row), so that the check starts no MLflow server and imports no MLflow."""
    if list_deployments(platform):
        return True
    for environment in environments.list_environments(platform)[:MAX_ENVIRONMENTS_CHECKED]:
        uri = environment["mlflow_tracking_uri"]
        if is_remote(uri):
            return True
        try:
            path = sqlite_path(uri)
            if not path.is_file():
                continue
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)) as db:
                if db.execute("SELECT 1 FROM registered_models LIMIT 1").fetchone():
                    return True
        except (InvalidInput, sqlite3.Error):  # a store not made yet, or busy: asked again later
            continue
    return False


def warm_pool_size() -> int:
    text = os.environ.get(WARM_POOL_ENV, "1").strip()
    if not text.isdigit() or int(text) > MAX_SIZE:
        log.warning("%s=%r is not a number from 0 to %d: using 1", WARM_POOL_ENV, text, MAX_SIZE)
        return 1
    return int(text)


def pool_status(platform: Platform) -> PoolStatus | None:
    """The warm pool's counts (what `/health` reports), None when there is no pool."""
    pool = platform.deployments.pool
    return pool.status() if pool is not None else None


def _child_env() -> dict[str, str]:
    """A scoring server's environment: the server's, without its token and MLflow settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLYARD_TOKEN", "MLFLOW_"))}


def _router(platform: Platform) -> Router:
    router = platform.deployments.router
    if router is None:
        raise OperationFailed("deployments are served by the mlyard server: use them through `mlyard server`")
    return router


def check_request(target: str, cpu: float, memory: float) -> None:
    if target not in TARGETS:
        raise InvalidInput(f"unknown target {target!r}: supported targets: {', '.join(TARGETS)}")
    if cpu <= 0 or memory <= 0:
        raise InvalidInput(f"invalid resources cpu={cpu} memory={memory}: both must be greater than 0")
    if cores_for(cpu) > available_cores():
        raise InvalidInput(
            f"cpu={cpu:g} needs {cores_for(cpu)} cores; the local target has {available_cores()}: ask for fewer"
        )


def deploy(
    platform: Platform, principal: Principal, *, env: str, model: str, version: str | None = None,
    stage: str | None = None, target: str = "local", cpu: float = 1, memory: float = 2,
) -> dict[str, Any]:  # fmt: skip
    """Deploy a version (or the one in `stage`, default Production); returns the deployment."""
    principal.require("pipelines:run")
    principal.require_environment(env)
    check_request(target, cpu, memory)
    check_env_name(env)
    check_repo_name(model)
    environment = environments.get_environment(platform, env)
    found = models.version_for(
        platform, env, model, version=version or None, stage=None if version else (stage or "Production")
    )
    number = str(found["version"])
    router = _router(platform)
    with platform.deployments.locked(env, model):
        previous = _row(platform, env, model)
        host = _serving(environment)["host"]
        # A new deployment's front port is bound when it is chosen: another process (a second mlyard server
        # on this machine) cannot take it while the scoring server starts.
        front = previous["port"] if previous else _allocate(platform, environment, bind=_front_binder(router, host))
        spec = {"version": number, "cpu": cpu, "memory": memory, "target": target, "by": principal.username}
        if previous is None:
            _insert(platform, env, model, front, host, spec)
        try:
            endpoint = _start(platform, environment, model, number, cpu=cpu, memory=memory)
        except EndpointFailed as exc:
            if previous is None:
                router.close(front)
            _failed(platform, env, model, exc.message, keep=previous is not None and previous["state"] == HEALTHY)
            raise
        try:
            router.route(front, endpoint.port, host=host)
        except OSError as exc:  # a failed deployment's port, taken by another process since
            _stop(platform, endpoint.pid)
            _failed(platform, env, model, f"port {front} is taken by another process ({exc.strerror})", keep=False)
            raise Conflict(f"the endpoint port {host}:{front} of deployment {model!r} is taken by another process: "
                           f"delete the deployment (`mlyard deployments delete {model} --env {env}`) and deploy "
                           "again to get a free port") from exc  # fmt: skip
        _record(platform, env, model, endpoint, spec)
        platform.deployments.restarts.pop((env, model), None)  # a new deployment starts a new restart history
    if previous and previous["pid"] and previous["pid"] != endpoint.pid:
        _retire_later(platform, router, front, previous["backend_port"], previous["pid"])
    deployed = show(platform, env, model)
    models.tag_version(platform, principal, env, model, number, {
        "scoring_uri": deployed["scoring_uri"], "deployed_at": deployed["updated_at"], "deployment_env": env,
    })  # fmt: skip
    audit.record_now(platform, "deployment.deployed", actor=principal.username, target=f"{env}/{model}", version=number)
    return deployed


def _serving(environment: dict[str, Any]) -> dict[str, Any]:
    serving = dict(environment.get("serving") or {})
    serving.setdefault("host", "127.0.0.1")
    serving.setdefault("port_range", [8600, 8699])
    return serving


def _front_binder(router: Router, host: str) -> Callable[[int], None]:
    def bind(port: int) -> None:
        router.route(port, None, host=host)  # listens at once; connections wait for the backend

    return bind


def _allocate(
    platform: Platform, environment: dict[str, Any], *, bind: Callable[[int], None] | None = None
) -> int:
    """A free port of the environment's range that no deployment records and nobody listens on; with
    `bind`, the port is also bound by it before anyone else can take it (OSError: try the next one)."""
    low, high = (int(p) for p in _serving(environment)["port_range"])
    with transaction(platform.sessions) as session:
        used = {p for row in session.scalars(select(Deployment)) for p in (row.port, row.backend_port) if p}
    with platform.deployments.guard:
        used |= platform.deployments.reserved | {e.port for e in platform.deployments.processes.values()}
        for port in range(low, high + 1):
            if port in used:
                continue
            try:
                if bind is None:
                    find_free_port(range(port, port + 1), _serving(environment)["host"])
                else:
                    bind(port)
            except (Conflict, OSError):  # taken
                continue
            platform.deployments.reserved.add(port)
            return port
    raise Conflict(f"no free port in {low}-{high} for environment {environment['name']}: delete a deployment")


def deployment_folder(platform: Platform, env: str, model: str) -> Path:
    """Where the deployment of `model` in `env` keeps its log, inference table and labels."""
    return platform.settings.envs_dir / env / FOLDER / model


def _start(
    platform: Platform, environment: dict[str, Any], model: str, number: str, *, cpu: float, memory: float
) -> Endpoint:
    folder = deployment_folder(platform, environment["name"], model)
    folder.mkdir(parents=True, exist_ok=True)
    child_env = _child_env()
    host = _serving(environment)["host"]
    for attempt in range(1, BIND_ATTEMPTS + 1):
        # The scoring server binds its port seconds after it was found free: another process may take it
        # first. Then its start fails while someone else listens there; try another port (bounded).
        port = _allocate(platform, environment)
        n = len(list(folder.glob(f"{number}-*.log"))) + 1
        try:
            endpoint = start_endpoint(
                f"models:/{model}/{number}",
                port=port,
                tracking_uri=environment["mlflow_tracking_uri"],
                log_file=folder / f"{number}-{n}.log",
                env=child_env,
                host=host,
                cpu=cpu,
                memory=memory,
                artifacts_destination=artifacts_destination(environment["mlflow_tracking_uri"]),
                inference_log=folder / INFERENCE_DIR,
                pool=platform.deployments.pool,
            )
            break
        except EndpointFailed:
            if attempt == BIND_ATTEMPTS or _is_free(port, host):
                raise
            log.warning("port %s:%d was taken while scoring server %s/%s started: trying another port",
                        host, port, model, number)  # fmt: skip
        finally:
            with platform.deployments.guard:
                platform.deployments.reserved.discard(port)
    with platform.deployments.guard:
        platform.deployments.processes[endpoint.pid] = endpoint
    return endpoint


def _is_free(port: int, host: str) -> bool:
    try:
        find_free_port(range(port, port + 1), host)
    except Conflict:
        return False
    return True


def artifacts_destination(tracking_uri: str) -> Path | None:
    """Where the environment's MLflow server keeps proxied artifacts (versions logged through /mlflow/<env>)."""
    if is_remote(tracking_uri):
        return None
    return sqlite_path(tracking_uri).parent / ARTIFACTS_DIR


def _stop(platform: Platform, pid: int | None) -> None:
    if not pid:
        return
    with platform.deployments.guard:
        endpoint = platform.deployments.processes.pop(pid, None)
    if endpoint is not None:
        endpoint.stop()
    else:
        stop_process_group(pid)


def _retire_later(platform: Platform, router: Router, front: int, backend: int | None, pid: int) -> None:
    """Stop the previous scoring server once its pinned connections are gone (at most GRACE_SECONDS)."""

    def retire() -> None:
        deadline = time.monotonic() + GRACE_SECONDS
        while backend and router.connections(front, backend) and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(platform, pid)

    threading.Thread(target=retire, name=f"mlyard-retire-{pid}", daemon=True).start()


def _insert(platform: Platform, env: str, model: str, front: int, host: str, spec: dict[str, Any]) -> None:
    with transaction(platform.sessions) as session:
        session.add(Deployment(
            name=model, environment=env, model=model, version=spec["version"], model_uri="", target=spec["target"],
            cpu=spec["cpu"], memory=spec["memory"], port=front, url=f"http://{host}:{front}", state=STARTING,
            message="", requested_by=spec["by"],
        ))  # fmt: skip
    with platform.deployments.guard:
        platform.deployments.reserved.discard(front)


def _record(
    platform: Platform, env: str, model: str, endpoint: Endpoint, spec: dict[str, Any], message: str = ""
) -> None:
    with transaction(platform.sessions) as session:
        row = _get(session, env, model)
        row.version, row.model_uri, row.target = spec["version"], endpoint.model_uri, spec["target"]
        row.cpu, row.memory, row.requested_by = spec["cpu"], spec["memory"], spec["by"]
        row.backend_port, row.pid, row.log_path = endpoint.port, endpoint.pid, str(endpoint.log_file)
        row.state, row.message, row.updated_at = HEALTHY, message, datetime.now(UTC)


def _failed(platform: Platform, env: str, model: str, message: str, *, keep: bool) -> None:
    """A first deployment that failed is `failed`; a failed redeploy leaves the running version serving."""
    with transaction(platform.sessions) as session:
        row = _get(session, env, model)
        if keep:
            row.message = f"the last redeploy failed, version {row.version} still serves: {message}"
        else:
            row.state, row.message = FAILED, message


def _get(session: Any, env: str, model: str) -> Deployment:
    row = session.scalars(select(Deployment).where(Deployment.environment == env, Deployment.model == model)).first()
    if row is None:
        raise NotFound(f"no deployment of model {model!r} in environment {env!r}; see `mlyard deployments list`")
    return row  # type: ignore[no-any-return]


def _row(platform: Platform, env: str, model: str) -> dict[str, Any] | None:
    try:
        return show(platform, env, model)
    except NotFound:
        return None


def show(platform: Platform, env: str, name: str) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        return deployment_dict(_get(session, env, name))


def list_deployments(platform: Platform, *, env: str | None = None) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        query = select(Deployment).order_by(Deployment.environment, Deployment.model)
        if env:
            query = query.where(Deployment.environment == env)
        return [deployment_dict(row) for row in session.scalars(query)]


def logs(platform: Platform, env: str, name: str) -> str:
    """The scoring server's log (its last MiB)."""
    path = show(platform, env, name)["log_path"]
    if not path or not Path(path).is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - _LOG_LIMIT))
        return fh.read().decode("utf-8", "replace")


def delete(platform: Platform, principal: Principal, env: str, name: str) -> dict[str, Any]:
    """Stop the scoring server, free the front port and remove the deployment."""
    principal.require("pipelines:run")
    principal.require_environment(env)
    with platform.deployments.locked(env, name):
        found = show(platform, env, name)
        router = platform.deployments.router
        if router is not None:
            router.close(found["port"])
        _stop(platform, found["pid"])
        with transaction(platform.sessions) as session:
            session.delete(_get(session, env, name))
    audit.record_now(platform, "deployment.deleted", actor=principal.username, target=f"{env}/{name}")
    return {**found, "state": STOPPED, "pid": None}


def recover_after_restart(platform: Platform) -> int:
    """Start every healthy deployment again on its front port (stopping what a previous server left)."""
    rows = list_deployments(platform)
    router = _router(platform)
    unbound = set()
    for row in rows:
        if row["state"] == HEALTHY:
            try:
                router.route(row["port"], None, host=row["url"].removeprefix("http://").rpartition(":")[0])
            except OSError as exc:
                unbound.add(row["port"])
                message = f"its scoring URI {row['url']} is taken by another process after a restart: {exc}"
                _failed(platform, row["environment"], row["model"], message, keep=False)
    started = 0
    for row in rows:
        if row["port"] in unbound:
            continue
        if row["state"] == STARTING:
            _failed(platform, row["environment"], row["model"], "the server stopped while it was starting", keep=False)
        elif row["state"] == HEALTHY:
            started += _restart(platform, router, row)
    return started


def _restart(platform: Platform, router: Router, row: dict[str, Any]) -> int:
    env, model = row["environment"], row["model"]
    with platform.deployments.locked(env, model):
        if row["pid"]:
            stop_process_group(row["pid"])
        try:
            environment = environments.get_environment(platform, env)
            endpoint = _start(platform, environment, model, row["version"], cpu=row["cpu"], memory=row["memory"])
        except (EndpointFailed, NotFound, OperationFailed) as exc:
            log.error("deployment %s/%s did not come back after the restart: %s", env, model, exc)
            _failed(platform, env, model, f"restarting after a server restart failed: {exc}", keep=False)
            return 0
        router.route(row["port"], endpoint.port, host=endpoint.host)
        _record(platform, env, model, endpoint, _spec_of(row))
    return 1


def _spec_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"version": row["version"], "cpu": row["cpu"], "memory": row["memory"], "target": row["target"],
            "by": row["requested_by"]}  # fmt: skip


def supervise(platform: Platform, stop: threading.Event, *, interval: float = 1.0) -> None:
    """Restart the scoring servers that stopped on their own (a crash, their memory limit), as a container
    service's restart policy does. One that stops more than restart_limit() times in RESTART_WINDOW seconds
    is left stopped and its deployment `failed`. Runs in the server until `stop` is set."""
    while not stop.wait(interval):
        runtime = platform.deployments
        with runtime.guard:  # the cheap check first: the database is read only when a server has stopped
            exited = {pid for pid, endpoint in runtime.processes.items() if endpoint.process.poll() is not None}
        if not exited:
            continue
        try:
            for row in list_deployments(platform):
                if row["state"] == HEALTHY and row["pid"] in exited:
                    _revive(platform, row, stop)
        except Exception:  # the supervisor must outlive any one deployment's trouble
            log.exception("the deployment supervisor failed a round")
        with runtime.guard:  # exited servers no deployment serves with any more (deleted, failed meanwhile)
            for pid in exited:
                runtime.processes.pop(pid, None)




def restart_limit() -> int:
    """How many restarts within RESTART_WINDOW a deployment gets: MLYARD_DEPLOYMENT_RESTART_LIMIT of the
    server, default RESTART_LIMIT (3)."""
    value = os.environ.get(RESTART_LIMIT_ENV, "").strip()
    try:
        return max(0, int(value)) if value else RESTART_LIMIT
    except ValueError:
        log.warning("%s=%r is not a whole number: using %d", RESTART_LIMIT_ENV, value, RESTART_LIMIT)
        return RESTART_LIMIT


def _revive(platform: Platform, row: dict[str, Any], stop: threading.Event) -> None:
    env, model = row["environment"], row["model"]
    router = _router(platform)
    with platform.deployments.locked(env, model):
        current = _row(platform, env, model)
        if stop.is_set() or current is None or current["state"] != HEALTHY or current["pid"] != row["pid"]:
            return  # redeployed, deleted or shutting down meanwhile
        with platform.deployments.guard:
            gone = platform.deployments.processes.pop(row["pid"], None)
        code = gone.process.returncode if gone is not None else None
        reason = "it passed its memory limit" if code == MEMORY_EXIT_CODE else f"it exited with code {code}"
        now = time.monotonic()
        recent = [t for t in platform.deployments.restarts.get((env, model), []) if now - t < RESTART_WINDOW] + [now]
        platform.deployments.restarts[(env, model)] = recent
        if len(recent) > restart_limit():
            router.route(current["port"], None, host=gone.host if gone is not None else "127.0.0.1")
            message = (f"the scoring server stopped {len(recent)} times in {RESTART_WINDOW:.0f} s, last because "
                       f"{reason}: not restarted again; see `mlyard deployments logs {model} --env {env}`")  # fmt: skip
            _failed(platform, env, model, message, keep=False)
            log.error("deployment %s/%s: %s", env, model, message)
            return
        log.warning("deployment %s/%s: the scoring server stopped (%s); restarting it", env, model, reason)
        host = gone.host if gone is not None else "127.0.0.1"
        router.route(current["port"], None, host=host)  # hold new requests until the new server is up
        try:
            environment = environments.get_environment(platform, env)
            endpoint = _start(platform, environment, model, current["version"], cpu=current["cpu"],
                              memory=current["memory"])  # fmt: skip
        except (EndpointFailed, NotFound, OperationFailed) as exc:
            _failed(platform, env, model, f"restarting after {reason} failed: {exc}", keep=False)
            return
        if stop.is_set():  # the server began to stop while this one started: leave nothing running
            _stop(platform, endpoint.pid)
            return
        router.route(current["port"], endpoint.port, host=endpoint.host)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        _record(platform, env, model, endpoint, _spec_of(current), message=f"restarted at {when}: {reason}")
    audit.record_now(platform, "deployment.restarted", actor="server", target=f"{env}/{model}", reason=reason)


def stop_all(platform: Platform) -> None:
    """Stop every scoring server this process started (the server's shutdown); deployments stay recorded."""
    with platform.deployments.guard:
        endpoints = list(platform.deployments.processes.values())
        platform.deployments.processes.clear()
    threads = [threading.Thread(target=e.stop, kwargs={"timeout": 5}) for e in endpoints]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def deployment_dict(row: Deployment) -> dict[str, Any]:
    return {
        "name": row.name,
        "environment": row.environment,
        "model": row.model,
        "version": row.version,
        "model_uri": row.model_uri,
        "target": row.target,
        "cpu": row.cpu,
        "memory": row.memory,
        "url": row.url,
        "scoring_uri": f"{row.url}/invocations",
        "port": row.port,
        "backend_port": row.backend_port,
        "pid": row.pid,
        "state": row.state,
        "message": row.message,
        "log_path": row.log_path,
        "requested_by": row.requested_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
