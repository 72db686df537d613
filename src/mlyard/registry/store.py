"""An environment's MLflow store: its URI, its one-time initialisation, and the locks that serialise writers.

The embedded default is an SQLite database `<env dir>/mlflow.db` with artifacts in `<env dir>/mlartifacts`.
MLflow creates the schema of a new database on first use, and several processes doing that at once corrupt
it, so :func:`init_store` runs the schema migration once, under a lock file next to the database. A remote
`http(s)://` tracking server is used as is.

Locks are `fcntl` locks on files in a lock folder (next to the database by default); they serialise the
processes of one machine, which is where mlyard runs its pipelines and its CLI.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from mlyard.errors import InvalidInput, OperationFailed

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCKS_DIR = "registry-locks"
LOCK_TIMEOUT = 120.0
_SQLITE_PREFIX = "sqlite:///"
_URI_RULE = "use sqlite:///<path>/mlflow.db (the embedded store) or the http(s):// URL of an MLflow tracking server"
_QUIET_LOGGERS = ("mlflow", "alembic")


def sqlite_uri(db_path: Path) -> str:
    """The tracking URI of an SQLite store at `db_path` (made absolute)."""
    return f"{_SQLITE_PREFIX}{Path(db_path).resolve()}"


def is_remote(tracking_uri: str) -> bool:
    return urlsplit(tracking_uri).scheme in ("http", "https")


def sqlite_path(tracking_uri: str) -> Path:
    """The database file of an `sqlite:///` URI; InvalidInput for any other URI but http(s)."""
    if not isinstance(tracking_uri, str) or not tracking_uri.startswith(_SQLITE_PREFIX):
        raise InvalidInput(f"unsupported MLflow tracking URI {tracking_uri!r}: {_URI_RULE}")
    raw = tracking_uri[len(_SQLITE_PREFIX) :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        raise InvalidInput(f"unsupported MLflow tracking URI {tracking_uri!r}: the SQLite store needs a file path")
    return Path(raw).resolve()


def check_tracking_uri(tracking_uri: str) -> str:
    """Return `tracking_uri` if mlyard can use it (sqlite:///file or http(s)://host), else InvalidInput."""
    if isinstance(tracking_uri, str) and is_remote(tracking_uri):
        if not urlsplit(tracking_uri).netloc:
            raise InvalidInput(f"unsupported MLflow tracking URI {tracking_uri!r}: the URL has no host")
        return tracking_uri
    sqlite_path(tracking_uri)
    return tracking_uri


def default_lock_dir(tracking_uri: str) -> Path:
    """Next to the database for SQLite; a folder under the system temp dir for a remote server."""
    if is_remote(tracking_uri):
        digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"mlyard-{LOCKS_DIR}" / digest
    return sqlite_path(tracking_uri).parent / LOCKS_DIR


def lock_file(lock_dir: Path, tracking_uri: str, key: str) -> Path:
    """The lock file of `key` (a model name, or the store itself) in one registry."""
    digest = hashlib.sha256(f"{tracking_uri}\0{key}".encode()).hexdigest()[:24]
    return lock_dir / f"{digest}.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, what: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path` (created if needed) across processes of this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationFailed(
                        f"{what} has been locked by another process for more than {timeout:g}s (lock file {path}); "
                        "wait for it to finish and try again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def quiet_mlflow(*, logs: bool = False) -> Iterator[None]:
    """Hide MLflow's deprecation warnings about registry stages (and, with `logs`, its INFO logs).

    mlyard keeps the legacy stages only as a mirror of the `staging`/`production` aliases, so MLflow's
    notice that stages are deprecated is about mlyard's internals and never reaches users.
    """
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS] if logs else []
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"(?s).*(deprecated|stages?\b)")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def never_used(db_path: Path) -> bool:
    """An embedded store's database file that does not exist yet or is empty: nothing was ever written there."""
    return not db_path.is_file() or db_path.stat().st_size == 0


def is_initialised(db_path: Path) -> bool:
    """True when `db_path` holds an MLflow schema (read with the standard library, without MLflow)."""
    if never_used(db_path):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"alembic_version", "registered_models", "model_versions"} <= tables:
                return False
            return conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.DatabaseError:
        return False


def init_store(tracking_uri: str, artifact_root: Path | None = None) -> None:
    """Create the MLflow schema of an embedded SQLite store once; a remote http(s) URI needs nothing.

    Idempotent and safe from several processes: it runs under a lock file next to the database. A new
    database is written from the schema of the installed MLflow version (`template`, milliseconds, no MLflow
    import); otherwise MLflow's own migrations create it. Artifacts go to `artifact_root` (default
    `<db dir>/mlartifacts`), the location of the default experiment.
    """
    from mlyard.registry.template import create_store

    check_tracking_uri(tracking_uri)
    if is_remote(tracking_uri):
        return
    db_path = sqlite_path(tracking_uri)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(artifact_root).resolve() if artifact_root is not None else db_path.parent / ARTIFACTS_DIR
    lock = lock_file(default_lock_dir(tracking_uri), tracking_uri, "\0store")
    with file_lock(lock, what=f"the MLflow store {db_path}"):
        if is_initialised(db_path):
            return
        try:
            if create_store(db_path, root):
                return
        except (OSError, sqlite3.Error) as exc:
            raise OperationFailed(f"could not create the MLflow store {db_path}: {exc}") from exc
        migrate_store(db_path, root)


def migrate_store(db_path: Path, artifact_root: Path) -> None:
    """Create or upgrade the store at `db_path` with MLflow's migrations (MLflow's stores do it when they
    open a database without its tables). The caller holds the store's lock."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    try:
        with quiet_mlflow(logs=True):
            TrackingStore(sqlite_uri(db_path), artifact_root.as_uri())
            RegistryStore(sqlite_uri(db_path))
    except MlflowException as exc:
        raise OperationFailed(f"could not initialise the MLflow store {db_path}: {exc.message}") from exc
