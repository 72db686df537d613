"""Engine, sessions and migrations. SQLite runs in WAL mode with foreign keys and a busy timeout;
PostgreSQL (``postgresql+psycopg://``, the extra ``mlyard[postgres]``) needs no settings of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import text as text_sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from mlyard.errors import InvalidInput, OperationFailed

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MAX_MIGRATIONS = 10_000
_REVISION = re.compile(r'^revision(?:: *str)? *= *["\']([^"\']+)["\']', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?:: *[^=]+)? *= *["\']([^"\']+)["\']', re.MULTILINE)
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg 3 driver, the one `mlyard[postgres]` installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def shown_url(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a URL>"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a 30 s busy timeout."""
    url = normalise_url(url)
    try:
        dialect = make_url(url).get_backend_name()
    except ArgumentError:
        raise InvalidInput(f"database URL {url!r} cannot be read; use {URL_FORMS}") from None
    if dialect == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy manage transactions, and start each with BEGIN IMMEDIATE-free defaults.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        hint = "pip install 'mlyard[postgres]'" if dialect == "postgresql" else f"use {URL_FORMS}"
        raise InvalidInput(f"no database driver for {shown_url(url)} ({exc}); {hint}") from None


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A short unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def head_revision() -> str | None:
    """The newest revision of the migrations, read from their files (`revision = "..."`, `down_revision =
    "..."`) without Alembic; None when they do not make one chain with one head (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py"))[:MAX_MIGRATIONS]:
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            return None
        revisions.add(found.group(1))
        parent = _DOWN_REVISION.search(text)
        if parent is not None:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """True when the database of `engine` is at the newest revision (its `alembic_version` says so)."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            rows = conn.execute(text_sql("SELECT version_num FROM alembic_version")).fetchall()
    except DBAPIError:
        return False  # no table yet (a new database), or one Alembic must look at
    return [row[0] for row in rows] == [head]


def upgrade(url: str) -> None:
    """Bring the schema at `url` to the newest Alembic revision (idempotent). A database already there (every
    server start but the first after an upgrade) is recognised without importing Alembic (0.4 s of CPU)."""
    engine = make_engine(url)  # a bad URL or a missing driver is the user's to fix: say so first
    try:
        if at_head(engine):
            return
    finally:
        engine.dispose()
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    try:
        command.upgrade(cfg, "head")
    except DBAPIError as exc:
        if not exc.connection_invalidated and exc.statement is not None:
            raise  # a failing migration statement: a bug, with its traceback
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise OperationFailed(
            f"cannot open the state database {shown_url(url)}: {reason}; check the database URL "
            "(`database_url` in settings.json, set by `mlyard init --database-url`) and that its server runs"
        ) from None
