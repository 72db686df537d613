"""A real PostgreSQL server for tests: `initdb` in a temp dir, `postgres` on a free loopback port.

One server per test process (each pytest-xdist worker has its own); each test asks for a fresh
database with `PostgresServer.create_database`. PostgreSQL refuses to run as root, so under root the
server runs as the `postgres` OS user (the Debian package creates it) in a directory owned by it.
Where the binaries or that user are missing, the fixtures skip with the reason and what to install.

Fixtures (re-exported by tests/conftest.py, usable from any test directory):
- `postgres`: this process's `PostgresServer`.
- `database_url`: parametrized over "sqlite" and "postgresql"; "" for SQLite (mlyard's default, a
  file in the home) or the URL of a fresh PostgreSQL database.

`MLYARD_TEST_DATABASE=postgresql pytest ...` puts the state of the shared servers of tests/conftest.py
(`server`, `own_server`, any `start_server`) on PostgreSQL too; tests that check what is stored at rest
read it with `state_rows`, which follows the server's backend.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "apt-get install postgresql"
SUPERUSER = "postgres"  # the database superuser initdb creates (not the OS user)
BACKENDS = ["sqlite", "postgresql"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_bindir() -> Path | None:
    """The directory holding initdb and postgres: $PG_BINDIR, PATH, or Debian's versioned directory."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    candidates.extend(reversed(debian))  # newest first
    for bindir in candidates:
        if (Path(bindir) / "initdb").is_file() and (Path(bindir) / "postgres").is_file():
            return Path(bindir)
    return None


def _run_as() -> dict[str, Any]:
    """subprocess options dropping to the `postgres` OS user when we are root (else run as ourselves)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip(f"PostgreSQL refuses to run as root and there is no 'postgres' OS user: {INSTALL_HINT}")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _die_with_parent() -> None:
    """In the server's process: stop (fast shutdown) when the test process dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG (Linux); elsewhere the server outlives a killed run
    except (OSError, AttributeError):
        pass


@dataclass
class PostgresServer:
    """A running PostgreSQL server of this test process."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    startup_seconds: float
    _count: int = 0

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) over TCP on the loopback address."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg connection in autocommit mode, as the superuser."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database, autocommit=True)

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        self._count += 1
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{worker}_{self._count}".lower())[:63]
        conn = self.connect()
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, no checkpoint wait
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(timeout: float = 30) -> PostgresServer:
    """initdb + postgres in a new temp dir; skips the test when PostgreSQL or its driver is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL driver is not installed: pip install 'psycopg[binary]' (extra 'postgres')")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(f"PostgreSQL is not installed: {INSTALL_HINT}")
    run_as = _run_as()
    started = time.monotonic()
    # Not under pytest's tmp dir: it is private to our user, and the server may run as another one.
    root = Path(tempfile.mkdtemp(prefix="mlyard-pg-"))
    (root / "socket").mkdir()
    if run_as:
        for path in (root, root / "socket"):
            os.chown(path, run_as["user"], run_as["group"])
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    initdb = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8"]
    initdb += ["--locale=C", "--no-sync", "--no-instructions"]
    init = subprocess.run(
        initdb, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False, **run_as
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
    port = _free_port()
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root / "socket"),
        "max_connections": "200",
        # A throwaway cluster: durability off for speed.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bindir / "postgres"), "-D", str(root / "data")]
    for key, value in options.items():
        argv += ["-c", f"{key}={value}"]
    log = open(root / "postgres.log", "ab")  # noqa: SIM115 - the server writes to it until stopped
    try:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **run_as,
        )
    finally:
        log.close()
    server = PostgresServer(root=root, port=port, proc=proc, startup_seconds=0.0)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = (root / "postgres.log").read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"postgres exited {proc.returncode}:\n{text}")
        try:
            server.connect().close()
            break
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.05)
    server.startup_seconds = time.monotonic() - started
    return server


_shared: list[PostgresServer] = []


def shared_postgres() -> PostgresServer:
    """This test process's server: started on first use, stopped when the process exits."""
    if not _shared:
        server = start_postgres()
        atexit.register(server.stop)
        _shared.append(server)
    return _shared[0]


def server_database_url() -> str:
    """The state database of the shared test servers (tests/conftest.py `start_server`): SQLite in the
    home by default; a fresh PostgreSQL database with MLYARD_TEST_DATABASE=postgresql."""
    choice = os.environ.get("MLYARD_TEST_DATABASE", "sqlite")
    if choice not in BACKENDS:
        raise ValueError(f"MLYARD_TEST_DATABASE={choice!r}: use one of {', '.join(BACKENDS)}")
    return shared_postgres().create_database("server") if choice == "postgresql" else ""


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """This test process's PostgreSQL server (each pytest-xdist worker has its own)."""
    return shared_postgres()


def backend_database_url(request: pytest.FixtureRequest, backend: str) -> str:
    """'' for "sqlite" (mlyard's default: a file in the home), else a fresh PostgreSQL database's URL."""
    if backend == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Parametrized over the state backends: '' (SQLite in the home) or a fresh PostgreSQL database's URL."""
    return backend_database_url(request, request.param)


def state_rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` read straight from the state database of the server whose home is `home`, whichever
    backend it runs on (SQLite file or PostgreSQL): for tests that check what is stored at rest."""
    from sqlalchemy import text

    from mlyard.db.engine import make_engine
    from mlyard.settings import Settings

    engine = make_engine(Settings.load(home).db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()
