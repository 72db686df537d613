"""MLflow's own tracking server for one environment: a child process listening on a Unix socket.

The process is MLflow's server app (`mlflow.server.fastapi_app:app`, the Flask handlers wrapped in
FastAPI) run by uvicorn with one worker, configured the way `mlflow server --backend-store-uri URI
--serve-artifacts --artifacts-destination DIR` configures its workers: through MLflow's
`_MLFLOW_SERVER_*` environment variables. MLflow keeps its store, artifact repository and tracking URI
in module globals, so one process serves one environment; mlyard's server mounts the processes of all
environments behind its token check (`mlyard.api.mlflow_mount`).

The socket lives in a private folder (mode 0700) under the system temp folder, which the sandbox of
steps replaces by its own: only the server's own user reaches it, and never a step.

Importing MLflow's server app takes seconds of CPU (`prepare_app` does it with Python's cyclic garbage collector
off), so it is done once per mlyard server: by a `ServerZygote` (mlyard.forkserver's fork server, as the warm
scoring pool's), which `mlyard server` starts first, before the CLI's own imports (`start_early`, called by
`mlyard.cli`), with the clean base environment and the server's orphan mark. Each environment's MLflow server is
a fork of it (milliseconds), which learns which environment it serves (its variables, store, socket, log) from
one JSON line on its standard input, then creates the store if needed (`init_store`, `write_ahead`) and serves.
Both the zygote and the server import in parallel (two cores), and the first environment's MLflow server is
ready about when the server answers /health. The zygote exits when the server's end of its control socket
closes, a fork when the server's end of its standard input closes (the server exited, even killed): nothing is
left behind. Without a zygote (it failed), `TrackingServer.start` starts a process of its own, as
`python -m mlyard.registry.tracking_server SOCKET`.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.abc
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mlyard.errors import InvalidInput, MlyardError
from mlyard.forkserver import Forked, Zygote, ZygoteGone, serve_forks
from mlyard.imports import collector_paused
from mlyard.registry.store import ARTIFACTS_DIR, init_store, is_remote, sqlite_path, sqlite_uri

log = logging.getLogger("mlyard.mlflow")

APP = "mlflow.server.fastapi_app:app"
MODULE = "mlyard.registry.tracking_server"  # python -m MODULE: `main` below
LOG_FILE = "mlflow-server.log"
ZYGOTE_FLAG = "--zygote"
ZYGOTE_LOG = "zygote.log"
MAX_CONFIG_BYTES = 256 * 1024  # a fork's configuration line
WARM_SECONDS = 180.0  # the longest a fork waits for its zygote's imports (= the mount's START_SECONDS)
MARK_VARIABLE = "MLYARD_AGENT_MARK"  # = mlyard.background.local_agents.MARK_VARIABLE (not imported: a higher layer)
WARM_ENV = "MLYARD_REGISTRY_WARM"  # environments whose MLflow server starts with the server (default 1; 0 = none)
WARM_LIMIT = 8
STOP_SECONDS = 10.0
LOG_TAIL_LINES = 20
# Warm-up of the zygote before it forks (prepare_app): what MLflow's app imports when it starts, and requests
# that match none of its routes (each of the API prefixes mlyard passes), so no store is touched.
WARM_MODULES = ("mlflow.server.assistant.session",)
WARM_PATHS = ("/api/2.0/mlflow/mlyard-warm-up", "/api/2.0/mlflow-artifacts/mlyard-warm-up",
              "/api/3.0/mlflow/mlyard-warm-up")  # fmt: skip
PROBE_SECONDS = 30.0
# Optional packages that modules of MLflow's server app only probe for when they are imported (`try: import ...
# except ImportError`) for features the tracking server never uses: pandas' Arrow-backed types (pandas.compat
# imports pyarrow) and MLflow's sparse-matrix model inputs (mlflow.models.utils imports scipy.sparse, whose array
# API layer walks numpy's submodules). Not imported while the app is (`_optional_packages_unprobed`): ~0.15-0.2 s
# of the import's ~2.2 s of CPU. A later `import` of them works as usual.
UNPROBED = ("pyarrow", "scipy")
# Native thread pools (BLAS, OpenMP: numpy starts OpenBLAS's at import) at one thread: MLflow's server computes
# nothing with them, and its zygote forks only while single-threaded (= mlyard.serving.limits._THREAD_POOLS).
THREAD_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# Variables of the server's environment the child keeps: nothing secret, only what Python needs to run.
KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH")


@dataclass(frozen=True)
class TrackingServerSpec:
    """Where one environment's MLflow server keeps its data and listens."""

    env: str
    backend_uri: str  # sqlite:///<env dir>/mlflow.db
    artifacts_dir: Path  # the destination of proxied artifacts (`--artifacts-destination`)
    socket: Path
    log: Path
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. the mark that lets a restarted server kill orphans

    @classmethod
    def for_environment(
        cls, env: str, tracking_uri: str, socket_dir: Path, *, extra_env: tuple[tuple[str, str], ...] = ()
    ) -> TrackingServerSpec:
        """The spec of an embedded environment (`sqlite:///...`); a remote MLflow is refused."""
        if is_remote(tracking_uri):
            raise InvalidInput(
                f"environment {env!r} uses the MLflow tracking server {tracking_uri}: use that URL directly "
                "(mlyard serves /mlflow/<env> only for environments with the embedded store)"
            )
        db = sqlite_path(tracking_uri)
        return cls(
            env=env,
            backend_uri=sqlite_uri(db),
            artifacts_dir=db.parent / ARTIFACTS_DIR,
            socket=socket_dir / f"{env}.sock",
            log=db.parent / LOG_FILE,
            extra_env=extra_env,
        )

    def argv(self) -> list[str]:
        """`python -m mlyard.registry.tracking_server SOCKET`: `main` below, in the child."""
        return [sys.executable, "-m", "mlyard.registry.tracking_server", str(self.socket)]

    def environment(self) -> dict[str, str]:
        """What `mlflow server --serve-artifacts` gives its workers, and nothing of the server's secrets."""
        env = base_environment()
        env.update({
            "_MLFLOW_SERVER_FILE_STORE": self.backend_uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": self.backend_uri,
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(self.artifacts_dir),
        })
        env.update(dict(self.extra_env))
        return env


def base_environment() -> dict[str, str]:
    """The variables of every environment's MLflow server (the zygote starts with these): what Python needs,
    MLflow's server settings that do not depend on the environment, native thread pools at one thread."""
    env = {name: os.environ[name] for name in KEPT_VARIABLES if os.environ.get(name)}
    env.update({
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SGI_NAME": "uvicorn",
        "_MLFLOW_IN_JOB_EXECUTOR": "false",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": tempfile.gettempdir(),
    })
    env.update(dict.fromkeys(THREAD_POOLS, "1"))
    return env


def warm_count() -> int | None:
    """`MLYARD_REGISTRY_WARM`: how many environments' MLflow servers start with the server (default 1, at
    most WARM_LIMIT); None when the value is not such a number (the caller warns and uses 1)."""
    text = os.environ.get(WARM_ENV, "1").strip()
    if not text.isdigit() or int(text) > WARM_LIMIT:
        return None
    return int(text)


class TrackingServer:
    """One environment's MLflow server process (started by `start`, stopped by `stop`)."""

    def __init__(self, spec: TrackingServerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | Forked | None = None  # a fork of the zygote, or a process of its own

    def start(self) -> None:
        """Start the process, which initialises the store (MLflow's schema, once, under its lock) before it
        serves: the imports that takes are those of MLflow's server app, paid once, in the child."""
        self.spec.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket.unlink()
        with open(self.spec.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.spec.argv(),
                env=self.spec.environment(),
                cwd=self.spec.artifacts_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_report(self) -> str:
        """Why the process is gone: its exit code and the end of its log."""
        code = self.proc.returncode if self.proc is not None else None
        try:
            with open(self.spec.log, encoding="utf-8", errors="replace") as log:
                tail = "".join(deque(log, maxlen=LOG_TAIL_LINES)).strip()
        except OSError:
            tail = ""
        return f"exited with code {code}" + (f": {tail}" if tail else f" (log: {self.spec.log})")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_SECONDS (to the process group: uvicorn and anything it started)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket.unlink()


def stop_process(proc: subprocess.Popen[bytes] | Forked) -> None:
    """Close the process's standard input (a fork's pipe: it stops), then SIGTERM its process group, and
    SIGKILL after STOP_SECONDS."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class ServerZygote:
    """The fork server of one mlyard server's MLflow servers: a process that imported MLflow's server app once
    (`prepare_app`, no store touched) and forks each environment's MLflow server (`fork`), which then applies
    its environment (mlyard.forkserver's protocol, as the warm scoring pool's zygote). It starts with the clean
    `base_environment()` and the server's orphan mark (`mark`: a fork's /proc/PID/environ is the zygote's
    initial one, which a restarted server reads to kill orphans); `close` stops it (its forks keep running)."""

    def __init__(self, folder: Path, zygote: Zygote, mark: tuple[str, str] | None) -> None:
        self.folder = folder  # the private folder of the sockets: the server's mount uses it
        self.zygote = zygote
        self.mark = mark

    @classmethod
    def start(cls, folder: Path | None = None, *, mark: tuple[str, str] | None = None) -> ServerZygote:
        folder = folder or socket_folder()
        env = base_environment()
        if mark is not None:
            env[mark[0]] = mark[1]
        with open(folder / ZYGOTE_LOG, "ab") as log:
            zygote = Zygote.start(sys.executable, env, output=log, cwd=str(folder), module=MODULE)
        return cls(folder, zygote, mark)

    @property
    def pid(self) -> int:
        return self.zygote.process.pid

    def alive(self) -> bool:
        return self.zygote.alive()

    def failed(self) -> bool:
        """It exited before it was warm (its log says why): its server starts MLflow servers cold from now on."""
        return not self.zygote.warm and not self.alive()

    def status(self) -> ZygoteStatus:
        return ZygoteStatus(pid=self.pid, warm=self.zygote.warm and self.alive(), failed=self.failed())

    def fork(self, spec: TrackingServerSpec, timeout: float = WARM_SECONDS) -> TrackingServer | None:
        """The MLflow server of `spec`, forked once the zygote is warm (it creates the store if needed, then
        serves); None when the zygote is gone, failed or not warm within `timeout` seconds (start one cold)."""
        if not self.zygote.wait_warm(timeout):
            if not self.failed():
                log.warning("the MLflow servers' zygote %d is not warm after %.0f s", self.pid, timeout)
            return None
        try:
            child, ready = self.zygote.fork()
        except ZygoteGone as exc:
            log.warning("the MLflow servers' zygote could not fork: %s", exc)
            return None
        os.close(ready)  # readiness is its /health on the socket
        server = TrackingServer(spec)
        server.proc = child
        spec.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            spec.socket.unlink()
        config = {"socket": str(spec.socket), "log": str(spec.log), "cwd": str(spec.artifacts_dir.parent),
                  "env": spec.environment()}  # fmt: skip
        try:
            assert child.stdin is not None
            child.stdin.write(json.dumps(config).encode() + b"\n")
            child.stdin.flush()
        except OSError as exc:
            log.warning("the MLflow server of environment %r forked by the zygote %d exited at once (%s)", spec.env,
                        self.pid, exc)  # fmt: skip
            server.stop()
            return None
        return server

    def close(self) -> None:
        """Stop the zygote (its folder stays: the mount removes it, or `remove_socket_folder`). One still importing
        forked nothing: it is killed at once rather than waited for (its forks, each in a session of its own, are
        never in its process group)."""
        if not self.zygote.warm:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self.zygote.close()


@dataclass(frozen=True)
class ZygoteStatus:
    """The MLflow servers' zygote of a server, as /health reports it."""

    pid: int
    warm: bool  # imported, and forks the environments' MLflow servers (False: starting, gone or failed)
    failed: bool  # exited before it was warm: the MLflow servers start cold (its log, zygote.log, says why)


_EARLY: list[ServerZygote] = []  # the zygote `mlyard server` started before its imports (start_early), until taken


def start_early(home: Path) -> None:
    """Start the MLflow servers' zygote of `mlyard server` at once: the CLI calls this before its own imports
    (the zygote then starts ~0.2 s of CPU earlier) when its command line is `mlyard [--home HOME] server ...`,
    with the home it names (resolved), whose mark the zygote carries; the command takes it (`take_early`). A
    zygote not taken (the command line was refused, the home is not initialised) is stopped and its folder
    removed when the process exits."""
    if _EARLY or warm_count() == 0:
        return
    try:
        _EARLY.append(ServerZygote.start(mark=server_mark(home)))
    except OSError:
        return  # the command starts one as before (and reports what fails)
    atexit.register(_drop_early)


def take_early() -> ServerZygote | None:
    """The zygote `start_early` started, once (None if it did not)."""
    return _EARLY.pop() if _EARLY else None


def _drop_early() -> None:
    while _EARLY:
        zygote = _EARLY.pop()
        zygote.close()
        remove_socket_folder(zygote.folder)


def server_mark(home: Path) -> tuple[str, str]:
    """The variable that marks the processes of the server of `home` (= mlyard.app's: a restarted server kills
    the processes left with it, mlyard.background.local_agents.kill_orphans)."""
    return (MARK_VARIABLE, str(home))


def socket_folder() -> Path:
    """A private folder (0700) for the servers' sockets, with a short path (sockets allow ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="mlyard-mlflow-"))


def remove_socket_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """The child: initialise the store named by `_MLFLOW_SERVER_FILE_STORE` (under its lock, as every other
    opener of the store does), then run MLflow's server app with uvicorn on the Unix socket `argv[0]`, as
    `uvicorn --uds SOCKET --workers 1 --no-access-log --log-level warning mlflow.server.fastapi_app:app`.
    With `--zygote --control-fd N`, import the app once and fork such a server per request of the mount on N
    (`ServerZygote`): each fork reads its socket, log and environment from its standard input (`_forked`)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [ZYGOTE_FLAG]:
        if args[1:2] != ["--control-fd"] or len(args) != 3 or not args[2].isdigit():
            print(f"usage: python -m {MODULE} --zygote --control-fd N", file=sys.stderr)
            return 2
        prepare_app()
        return serve_forks(int(args[2]), _forked, name="the MLflow servers' zygote",
                           without="each environment's MLflow server starts as a process of its own")  # fmt: skip
    if len(args) != 1:
        print(f"usage: python -m {MODULE} SOCKET | --zygote --control-fd N", file=sys.stderr)
        return 2
    return _serve(args[0], prepared=False)


def _serve(socket: str, *, prepared: bool) -> int:
    backend = os.environ.get("_MLFLOW_SERVER_FILE_STORE", "")
    destination = os.environ.get("_MLFLOW_SERVER_ARTIFACT_DESTINATION", "")
    try:
        init_store(backend, Path(destination) if destination else None)
    except MlyardError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    write_ahead(backend)
    if not prepared:
        prepare_app()  # a fork's zygote did it before it forked
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from mlyard.asgi_server import QuietServer

    # = `uvicorn.run(APP, uds=socket, ...)`, with a main loop that wakes once a second (mlyard.asgi_server)
    config = uvicorn.Config(APP, uds=socket, access_log=False, log_level="warning", timeout_graceful_shutdown=5)
    config.load_app()
    server = QuietServer(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(socket)
    return 0 if server.started else STARTUP_FAILURE


def write_ahead(backend_uri: str) -> None:
    """Put the embedded store in write-ahead-log mode (`journal_mode=WAL`, kept by the database file), as
    mlyard's own database is (db/engine.py). MLflow's default, a rollback journal created, synced and deleted
    at every commit, costs ~8 ms of wall and 0.4 ms of CPU per commit here, and every parameter, metric or
    tag logged and every registry change is a commit: 0.1 ms of wall and 0.04 ms of CPU with WAL, still synced
    at each commit (`synchronous=FULL`, SQLite's default). Nothing to do for a remote store."""
    if not backend_uri or is_remote(backend_uri):
        return
    try:
        with contextlib.closing(sqlite3.connect(sqlite_path(backend_uri), timeout=5)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # a no-op once the file is in WAL mode
    except (sqlite3.Error, MlyardError):  # e.g. busy: the store works as MLflow made it
        pass


def _forked(stdin_fd: int, ready_fd: int) -> int:
    """A fork of the zygote (mlyard.forkserver's `become`): read the configuration line on `stdin_fd`, apply it
    (environment, working folder, log), watch `stdin_fd` (when the server's end closes, stop as on SIGTERM),
    then create the store if needed and serve. 0 when it closes before a configuration came."""
    os.close(ready_fd)  # the mount waits for the socket's /health instead
    stdin = open(stdin_fd, "rb")  # noqa: SIM115 (read by the watching thread as long as the process lives)
    line = stdin.readline(MAX_CONFIG_BYTES)
    if not line.endswith(b"\n"):
        return 0
    try:
        config = json.loads(line)
        env, cwd, log, socket = dict(config["env"]), str(config["cwd"]), str(config["log"]), str(config["socket"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: invalid MLflow server configuration: {exc}", file=sys.stderr, flush=True)
        return 2
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    os.chdir(cwd)
    sys.stdout.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    threading.Thread(target=_stop_with_the_server, args=(stdin,), name="mlyard-parent-watch", daemon=True).start()
    return _serve(socket, prepared=True)


def prepare_app() -> None:
    """Import uvicorn and MLflow's server app and do, before any store is known, the work its first requests
    would do: the modules its lifespan imports at start, and the routing state FastAPI builds on the first
    request (0.25 s of CPU for MLflow's routes) and Flask's URL map, by requests that match no route (404, no
    store touched: MLflow creates its stores on first use, from the variables each fork of the zygote is given).

    Python's cyclic garbage collector is off meanwhile: the import creates about half a million objects that
    live as long as the process, and the collections they trigger would scan them again and again (a fifth to
    a third of the import's CPU) to find almost nothing (a few thousand objects, some hundred kilobytes). The
    objects are then frozen (`gc.freeze`: never scanned again, the later collections only see what requests
    create) and the collector is turned on again, as it was. The installed packages' entry points are read once
    meanwhile (`_entry_points_read_once`), and Werkzeug's routing rules compile their URL builders on first use
    (`_url_builders_on_first_use`), and the optional packages in UNPROBED are not imported
    (`_optional_packages_unprobed`)."""
    with collector_paused():
        with _entry_points_read_once(), _url_builders_on_first_use():
            import uvicorn  # noqa: F401 (first, as in a normal start: MLflow's app then sets itself up as a server)

            app_module = APP.split(":")[0]
            try:
                with _optional_packages_unprobed(UNPROBED):
                    app = importlib.import_module(app_module).app
            except ModuleNotFoundError as exc:
                if (exc.name or "").partition(".")[0] not in UNPROBED:
                    raise
                app = importlib.import_module(app_module).app  # a module needs it: imported as usual
            for module in WARM_MODULES:
                with contextlib.suppress(ImportError):
                    importlib.import_module(module)
        with contextlib.suppress(Exception):  # a warm-up only: the first real request does it otherwise
            import asyncio

            asyncio.run(_probe(app))


@contextlib.contextmanager
def _entry_points_read_once() -> Iterator[None]:
    """While MLflow's server app is imported, `importlib.metadata.entry_points(group=...)` reads the installed
    packages' entry points once and selects from them: MLflow's plugin registries ask a dozen times, and each call
    reads every installed package's metadata (~75 ms of CPU in all). Nothing is installed meanwhile, so the answers
    are those of the function itself, which answers every call again once the import is done (also for modules
    that kept a reference)."""
    import importlib.metadata as metadata

    original = metadata.entry_points
    read: list[Any] = []
    importing = True

    def entry_points(**params: Any) -> Any:
        if not importing or not params:
            return original(**params)
        if not read:
            read.append(original())
        return read[0].select(**params)

    metadata.entry_points = entry_points  # type: ignore[assignment]
    try:
        yield
    finally:
        importing = False
        if metadata.entry_points is entry_points:
            metadata.entry_points = original


class _Unprobed(importlib.abc.MetaPathFinder):
    """A finder that answers "not installed" for some top-level packages and their submodules."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = frozenset(packages)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not probed while MLflow's server app is "
                                      "imported)", name=fullname)  # fmt: skip
        return None


@contextlib.contextmanager
def _optional_packages_unprobed(packages: tuple[str, ...]) -> Iterator[None]:
    """While MLflow's server app is imported, an `import` of one of `packages` (or of a submodule) that is not
    imported yet fails as for a package that is not installed: the modules that only probe for it take their
    path without it. Nothing is left of a refused import, so the same `import` works as usual afterwards (and
    `prepare_app` imports the app again, as usual, when a module needed one of them after all)."""
    finder = _Unprobed(packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


@contextlib.contextmanager
def _url_builders_on_first_use() -> Iterator[None]:
    """While MLflow's server app is imported, each Werkzeug routing rule added to a URL map compiles the functions
    that build its URLs (`url_for`, `MapAdapter.build`) the first time one is called instead of when the rule is
    added. MLflow's Flask app adds about 400 rules and builds no URL from them; each rule generated and compiled two
    builders from Python syntax trees: ~0.3 s of CPU, about a tenth of the import. A rule's builder, compiled later,
    is the same function (it reads the rule's parts and converters, fixed once the rule is bound). Rules added
    after the import compile at once, as usual; with another Werkzeug (no `Rule._compile_builder`), nothing
    changes."""
    try:
        from werkzeug.routing.rules import Rule
    except ImportError:
        yield
        return
    original = Rule.__dict__.get("_compile_builder")
    if not callable(original):
        yield
        return

    def compile_builder(self: Any, append_unknown: bool = True) -> Any:
        compiled: list[Any] = []

        def build(rule: Any, /, **values: Any) -> Any:
            if not compiled:
                compiled.append(original(rule, append_unknown))
            return compiled[0](rule, **values)

        return build

    Rule._compile_builder = compile_builder  # type: ignore[method-assign]
    try:
        yield
    finally:
        if Rule.__dict__.get("_compile_builder") is compile_builder:
            Rule._compile_builder = original  # type: ignore[method-assign]


async def _probe(app: Any) -> None:
    """GET each path of WARM_PATHS through the ASGI app, in this process, and drop the answers."""
    import asyncio

    for path in WARM_PATHS:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 0), "server": ("localhost", 80)}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # the client never disconnects during a probe
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        await asyncio.wait_for(app(scope, receive, send), PROBE_SECONDS)


def _stop_with_the_server(stdin: BinaryIO) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stdin.read(4096):  # the server writes nothing more: this ends when its end closes
            pass
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
