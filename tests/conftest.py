"""Shared fixtures: a real `mlyard server` process on a free loopback port with a temporary home,
and the real `git` client with an isolated configuration."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

# skops (MLflow's format for scikit-learn models), imported by the first test that logs or loads one, searches the
# loaded modules in import order for each scipy.special function (~230): after collection, scipy.special came
# after some 2700 modules (MLflow's among them), 2-3 s of CPU per worker; imported here, before mlyard's and the
# other test modules' imports, 0.6-1 s (collection imports it anyway). The product's steps and scoring processes
# do the same (docs/template.md, docs/serving.md); the tests that check the names found compare them in processes
# of their own.
import scipy.special  # noqa: F401

from mlyard.services.bootstrap import init_home
from mlyard.settings import Settings, resolve_home
from tests.postgres import database_url, postgres, server_database_url  # noqa: F401 - fixtures for all test dirs

# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set (container images often set it, this machine's
# among them): without it each xdist worker rewrites and compiles every test module again (a worker's collection:
# 12.7-13.6 s of CPU instead of 7.5-9.7 s) and each process the suite starts with the tests' environment compiles
# mlyard's modules again. Set here, in the first process, before xdist starts its workers: they and every process
# they start inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# Collection imports MLflow, scikit-learn, pandas and databricks-sdk and makes some two thousand items: with the
# cyclic garbage collector on, its collections rescan those long-lived objects again and again (each worker's
# collection: 11-16 s of CPU with it, 6-7 s without). Off until the tests start (pytest_runtestloop below).
gc.disable()

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Collection is over (in an xdist worker, or a run without xdist; the xdist controller collects nothing):
    freeze what it made (never scanned again) and turn the collector on for the tests, as mlyard.imports does."""
    gc.freeze()
    gc.enable()


@pytest.fixture
def collector() -> Iterator[None]:
    """For tests that turn the cyclic garbage collector off or freeze objects: its state (on or off, nothing
    frozen by the test) is put back after the test."""
    collecting = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()
        else:
            gc.disable()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a `long` test first, then files that start servers (`slow`), then the rest.

    `pytest -n 2 --dist=loadfile --no-loadscope-reorder` hands whole files to the workers in this
    order, so the longest ones start at once and the many short files even out the end; xdist's own
    order (most tests first) left the one-test files of a minute or more for last, on one worker.
    """

    def rank(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("long") else 1 if item.get_closest_marker("slow") else 2

    by_file: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        by_file[path] = min(by_file.get(path, 2), rank(item))
    items.sort(key=lambda item: by_file[item.nodeid.split("::")[0]])  # stable: collection order within a rank


# MLflow's process-wide URIs: `mlflow.set_tracking_uri` / `set_registry_uri` keep each in a module global and copy
# it into its environment variable (which servers and steps started later inherit); `set_registry_uri(None)` leaves
# the variable set. A test module that leaves one set sends every later module of its xdist worker to its store.
MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
_MLFLOW_GLOBALS = (
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
    ("mlflow.tracking.fluent", "_active_experiment_id"),
)


def mlflow_global_state() -> dict[str, str | None]:
    """MLflow's global URIs and experiment: its module globals (when MLflow is imported) and environment variables."""
    state: dict[str, str | None] = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    for module, name in _MLFLOW_GLOBALS:
        value = getattr(sys.modules.get(module), name, None)
        state[f"{module}.{name}"] = None if value is None else str(value)
    return state


def restore_mlflow_global_state(state: dict[str, str | None]) -> None:
    for name in MLFLOW_URI_VARIABLES:
        if state[name] is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = state[name]  # type: ignore[assignment]
    for module, name in _MLFLOW_GLOBALS:
        if module in sys.modules:
            setattr(sys.modules[module], name, state[f"{module}.{name}"])
    if "mlflow.tracking._tracking_service.utils" in sys.modules:  # the tracer keeps the tracking URI it was made with
        from mlflow.tracing.provider import reset

        reset()


@contextlib.contextmanager
def mlflow_globals(uri: str) -> Iterator[None]:
    """MLflow's global tracking and registry URIs on `uri` (fluent API, `models:/` loading), restored afterwards."""
    import mlflow

    before = mlflow_global_state()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        restore_mlflow_global_state(before)


_MLFLOW_AT_START = mlflow_global_state()


def mlflow_leaks(before: dict[str, str | None]) -> list[str]:
    """What differs from `before` in MLflow's global state, one `name: before -> now` each."""
    now = mlflow_global_state()
    return [f"{name}: {before[name]!r} -> {now[name]!r}" for name in now if now[name] != before[name]]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """At a module's end (its fixtures torn down, and the session's at the last test), MLflow's global state must be
    what it was when the run started: a module that leaves it changed fails here (and the state is put back)."""
    result = yield
    if nextitem is None or nextitem.path != item.path:
        leaked = mlflow_leaks(_MLFLOW_AT_START)
        if leaked:
            restore_mlflow_global_state(_MLFLOW_AT_START)
            pytest.fail(
                f"{item.path.name} (a test or a fixture of it) left MLflow's global state changed: {'; '.join(leaked)}."
                " Set it with tests.conftest.mlflow_globals (restored on exit) or monkeypatch"
            )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_env(home: Path) -> dict[str, str]:
    """The real git client, isolated from the developer's configuration."""
    return {
        **os.environ,
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test User",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test User",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def mlyard(
    *args: str, home: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a process of its own with MLYARD_HOME=home: forked from the worker's CLI fork server
    (tests/cli_fork.py), or `python -m mlyard` when the call's Python settings differ or MLYARD_TEST_CLI_FORKS=0."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("MLYARD_URL", "MLYARD_TOKEN")}
    full_env.update({"MLYARD_HOME": str(home), "COLUMNS": "200", **(env or {})})
    forks = _forks("cli", full_env)
    if forks is not None:
        proc = forks.call(list(args), full_env, timeout)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "mlyard", *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlyard {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


ForkKind = Literal["cli", "server"]  # what a fork server has imported: tests/cli_fork.py PRELOAD


class Forks:
    """A fork server of tests/cli_fork.py for this worker's `mlyard` calls (`kind` "cli") or servers ("server"),
    started at the first call or server start."""

    def __init__(self, kind: ForkKind) -> None:
        import tempfile

        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"mlyard-{kind}-"))
        self.path = str(self.dir / "forks.sock")
        self.env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from tests.cli_fork import serve; serve({self.path!r}, {kind!r})"],
            cwd=REPO_ROOT, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        ready = self.proc.stdout is not None and self.proc.stdout.readline() == b"ready\n"
        assert ready, f"the {kind} fork server failed"
        self.count = 0
        self.lock = threading.Lock()

    def suits(self, env: dict[str, str]) -> bool:
        """Whether a call with `env` can be forked: the interpreter's own settings are the fork server's."""
        keys = {k for k in (*env, *self.env) if k.startswith("PYTHON") and k not in FORK_NEUTRAL}
        return all(env.get(k) == self.env.get(k) for k in keys)

    def call(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        import json

        with self.lock:
            self.count += 1
            n = self.count
        out, err = self.dir / f"{n}.out", self.dir / f"{n}.err"
        request = {"argv": args, "env": env, "cwd": os.getcwd(), "out": str(out), "err": str(err)}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(self.path)
            conn.sendall(json.dumps(request).encode())
            conn.shutdown(socket.SHUT_WR)
            with conn.makefile("rb") as answer:
                pid = int(answer.readline())
                try:
                    code = int(answer.readline())
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired([sys.executable, "-m", "mlyard", *args], timeout) from None
        try:
            stdout, stderr = (path.read_bytes().decode(errors="replace") for path in (out, err))
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)
        return subprocess.CompletedProcess([sys.executable, "-m", "mlyard", *args], code, stdout, stderr)

    def start(self, args: list[str], env: dict[str, str], log: Path) -> ForkedProcess:
        """`python -m mlyard ARGS` with `env`, forked, running on in a session of its own with its stdout and
        stderr appended to `log` (as a `start_new_session` Popen with stderr to stdout)."""
        import json

        request = {"argv": args, "env": env, "cwd": os.getcwd(), "out": str(log), "err": str(log), "session": True}
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(60)
            conn.connect(self.path)
            conn.sendall(json.dumps(request).encode())
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while not answer.endswith(b"\n") and len(answer) < 32:
                got = conn.recv(32 - len(answer))
                if not got:
                    raise RuntimeError(f"the {self.kind} fork server did not start `mlyard {' '.join(args)}`")
                answer += got
        except BaseException:
            conn.close()
            raise
        return ForkedProcess([sys.executable, "-m", "mlyard", *args], int(answer), conn)

    def close(self) -> None:
        import shutil

        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


class ForkedProcess:
    """A process a fork server started (`Forks.start`), with what the tests use of `subprocess.Popen`. It is not
    this process's child: its exit code comes from the fork server's handler that waits for it (on `answer`)."""

    def __init__(self, args: list[str], pid: int, answer: socket.socket) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._answer = answer
        self._lock = threading.Lock()

    def _read_code(self, timeout: float | None) -> int | None:
        """The exit code if it arrives within `timeout` seconds (None: wait for it)."""
        import select

        with self._lock:
            if self.returncode is not None:
                return self.returncode
            ready, _, _ = select.select([self._answer], [], [], timeout)
            if not ready:
                return None
            self._answer.settimeout(10)  # the line is one send: it is there once any of it is
            text = b""
            while not text.endswith(b"\n") and len(text) < 32:
                got = self._answer.recv(32 - len(text))
                if not got:
                    raise RuntimeError(f"the fork server's handler of process {self.pid} ended without its exit code")
                text += got
            self.returncode = int(text)
            self._answer.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._read_code(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_code(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        """As Popen's: nothing once the process is known to have ended (its pid may be another process's)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


FORK_NEUTRAL = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}  # no other effect than on output buffering / .pyc
_FORKS: dict[str, Forks] = {}
_FORKS_LOCK = threading.Lock()


def _forks(kind: ForkKind, env: dict[str, str]) -> Forks | None:
    """This worker's fork server of `kind` ("cli", "server"), when a process with `env` can be forked from it
    (its `PYTHON*` variables are the worker's; MLYARD_TEST_CLI_FORKS=0: real processes for all)."""
    if os.environ.get("MLYARD_TEST_CLI_FORKS") == "0":
        return None
    with _FORKS_LOCK:
        forks = _FORKS.get(kind)
        if forks is None or forks.proc.poll() is not None:
            forks = _FORKS[kind] = Forks(kind)
    return forks if forks.suits(env) else None


@pytest.fixture(scope="session", autouse=True)
def _stop_forks() -> Iterator[None]:
    yield
    with _FORKS_LOCK:
        for forks in _FORKS.values():
            forks.close()
        _FORKS.clear()


WARM_OFF = {"MLYARD_REGISTRY_WARM": "0", "MLYARD_SERVING_WARM_POOL": "0", "MLYARD_STEP_WARM": "0"}
# One TLS context for every HTTP client of the tests: httpx builds one per client otherwise, loading the CA bundle
# (tens of milliseconds of CPU), and the tests make a client for each poll of a run (ten a second).
TLS = ssl.create_default_context()


@dataclass
class Server:
    """A real `mlyard server` process: forked from the worker's server fork server, or a new interpreter (`start`)."""

    home: Path
    port: int
    token: str
    username: str = "admin"
    options: tuple[str, ...] = ()  # extra `mlyard server` options
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables of the server
    cold: bool = False  # a new interpreter (`python -m mlyard server`), never forked (see `start`)
    proc: subprocess.Popen[bytes] | ForkedProcess | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:  # generous: a loaded test machine starts a server slowly
        env = self.environment()
        args = ["server", "--port", str(self.port), *self.options]
        forks = self.fork_server(env)
        if forks is not None:
            self.proc = forks.start(args, env, self.log)
        else:
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "mlyard", *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1, verify=TLS) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()}")
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy: {self.log.read_text()}")

    def environment(self) -> dict[str, str]:
        """The server's environment: the worker's, its home, WARM_OFF and the test's `env`."""
        # No warm processes unless a test asks (tests/registry/test_warm_start.py): each server of the suite would
        # start an MLflow server and a scoring process in the background (seconds of CPU each).
        return {**os.environ, "MLYARD_HOME": str(self.home), **WARM_OFF, **self.env}

    def fork_server(self, env: dict[str, str]) -> Forks | None:
        """The worker's server fork server (tests/cli_fork.py: the platform imported once) to fork this server
        from; None for a new interpreter: a `cold` server, one that starts the early MLflow zygote before its
        imports (MLYARD_REGISTRY_WARM not 0: mlyard/cli/__init__.py), one whose Python settings differ from the
        worker's, or all with MLYARD_TEST_CLI_FORKS=0."""
        if self.cold or env.get("MLYARD_REGISTRY_WARM", "1").strip() != "0":
            return None
        return _forks("server", env)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def client(self, token: str | None = None) -> httpx.Client:
        tok = self.token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=TLS)

    def cli(self, *args: str, token: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"MLYARD_URL": self.url, "MLYARD_TOKEN": token or self.token}
        return mlyard(*args, home=self.home, env=env, check=check)

    def remote(self, repo: str, token: str | None = None, user: str | None = None) -> str:
        return f"http://{user or self.username}:{token or self.token}@127.0.0.1:{self.port}/git/{repo}.git"


def new_server(
    tmp: Path, *options: str, state_url: str | None = None, env: dict[str, str] | None = None, cold: bool = False,
    **settings: Any,
) -> Server:  # fmt: skip
    """An initialised home under `tmp` and its server, not started yet: `mlyard server` with `options` and `env`
    added to its environment; the state on `state_url` (default: per MLYARD_TEST_DATABASE, SQLite in the home);
    `cold`: a new interpreter, not forked (`Server.start`); `settings` are more fields of settings.json
    (`max_artifact_bytes=...`)."""
    home = tmp / "home"
    port = free_port()
    url = server_database_url() if state_url is None else state_url
    # What `mlyard init --port PORT [--database-url URL]` does (tests/foundation/test_cli.py runs the command
    # itself), in this process: a subprocess would import the platform again for every server.
    settings.setdefault("serving_port_base", _serving_port_base(tmp))
    config = Settings(home=resolve_home(home), port=port, database_url=url, **settings)
    migrated(config.db_url)
    info = init_home(config)
    return Server(home=home, port=port, token=info.token, username=info.username, options=options, env=dict(env or {}),
                  cold=cold)  # fmt: skip


def local_agents(pid: int) -> list[Any]:
    """The live local agent processes (`psutil.Process`) of the server process `pid`."""
    import psutil

    found = []
    for child in psutil.Process(pid).children():
        try:
            if "mlyard.background.local_agents" in child.cmdline():
                found.append(child)
        except psutil.Error:  # a dead one (zombie) until the server reaps it
            continue
    return found


_MIGRATED: list[Path] = []  # this worker's new SQLite state database at the newest revision (`migrated`)


def migrated(url: str) -> None:
    """Put a new SQLite state database at `url` at the newest revision, as `mlyard.db.engine.upgrade` does (which
    then finds it there and returns): a copy (SQLite's backup) of the one this worker migrated once. Alembic's
    upgrade of an empty database costs 0.1-0.2 s of CPU and the suite makes some two hundred (a server's home, an
    engine's database); the copy has the same schema and revision, made by the same migrations. Anything else (a
    server database, a file that exists already) is left to `upgrade`."""
    import atexit
    import shutil
    import sqlite3
    import tempfile

    from mlyard.db.engine import upgrade

    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return
    target = Path(url.removeprefix(prefix))
    if target.exists():
        return
    if not _MIGRATED:
        folder = tempfile.mkdtemp(prefix="mlyard-migrated-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        upgrade(f"{prefix}{folder}/state.db")
        _MIGRATED.append(Path(folder) / "state.db")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    source, copy = sqlite3.connect(_MIGRATED[0]), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


SERVING_PORTS = range(10_000, 32_500, 300)  # below the ephemeral ports; 300 a server: dev, test and prod


def _serving_port_base(tmp: Path) -> int:
    """Serving ports of a server of its own: the servers of all xdist workers count on one locked file in the
    run's shared temporary folder, so no two servers of a run share a deployment port (a server whose
    deployment restarts would otherwise find another server's scoring server behind its URI)."""
    import fcntl

    root = tmp
    while root.parent != root and not root.name.startswith("pytest-"):
        root = root.parent
    counter = (root if root.name.startswith("pytest-") else tmp) / "serving-ports.count"
    with open(counter, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        n = int(fh.read() or 0)
        fh.seek(0)
        fh.truncate()
        fh.write(str(n + 1))
    return SERVING_PORTS[n % len(SERVING_PORTS)]


def start_server(tmp: Path, *options: str, state_url: str | None = None, env: dict[str, str] | None = None,
                 cold: bool = False, **settings: Any) -> Server:  # fmt: skip
    """`new_server`, started."""
    server = new_server(tmp, *options, state_url=state_url, env=env, cold=cold, **settings)
    server.start()
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole session (tests use unique repo names)."""
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that kill or restart it."""
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@dataclass
class Git:
    """The real git client in a scratch directory."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.cwd, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def commit(self, files: dict[str, str], message: str, cwd: Path | None = None) -> str:
        root = cwd or self.cwd
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        self("add", "--all", cwd=root)
        self("commit", "-q", "-m", message, cwd=root)
        return self("rev-parse", "HEAD", cwd=root).stdout.strip()


def make_git(tmp: Path) -> Git:
    work = tmp / "work"
    work.mkdir()
    (tmp / "gitconfig").write_text("[init]\n\tdefaultBranch = master\n")
    return Git(cwd=work, env=git_env(tmp))


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return make_git(tmp_path)


SKOPS_MLFLOW_FIRST = (
    "import sys, mlflow, mlflow.pyfunc, mlflow.sklearn, skops.io._trusted_types as trusted; "
    "assert list(sys.modules).index('mlflow') < list(sys.modules).index('scipy.special'); "
    "print(*trusted.SCIPY_UFUNC_TYPE_NAMES)"
)


@pytest.fixture(scope="session")
def skops_names_mlflow_first(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The names skops gives scipy.special's ufuncs when MLflow is imported before scipy.special (as in `mlflow models
    serve`): the reference of the import-order tests (tests/serving/test_imports.py, tests/scaffold/test_step_exit.py).
    Found once per run by a Python of its own (its import takes seconds of CPU), shared by the xdist workers
    through a file in their common temporary folder, under a lock."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    found = shared / "skops-names-mlflow-first.txt"
    with open(shared / "skops-names-mlflow-first.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not found.exists():
            proc = subprocess.run([sys.executable, "-c", SKOPS_MLFLOW_FIRST], capture_output=True, text=True,
                                  timeout=300, check=False)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            found.write_text(proc.stdout, encoding="utf-8")
        names = found.read_text(encoding="utf-8").split()
    assert len(names) > 100
    return names
