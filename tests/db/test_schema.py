"""The state schema on each backend: the Alembic migrations build what tables.py declares, upgrade is
idempotent, downgrade works, and values come back as they went in (texts longer than a VARCHAR
would hold, booleans, JSON, timezone-aware times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from mlyard.db.engine import MIGRATIONS_DIR, make_engine, make_sessionmaker, transaction, upgrade
from mlyard.db.tables import AuditEntry, Base, Pipeline, PushEvent, Run, RunJob, RunStage, RunStep
from tests.conftest import free_port, mlyard
from tests.postgres import PostgresServer


def state_url(database_url: str, tmp_path: Path) -> str:
    """The fixture's URL, or mlyard's default for SQLite: a file (here in the test's directory)."""
    return database_url or f"sqlite:///{tmp_path / 'mlyard.db'}"


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_build_the_declared_schema_and_upgrade_is_idempotent(database_url: str, tmp_path: Path) -> None:
    url = state_url(database_url, tmp_path)
    upgrade(url)
    upgrade(url)
    assert schema_differences(url) == []


def test_downgrade_to_nothing_and_upgrade_again(database_url: str, tmp_path: Path) -> None:
    url = state_url(database_url, tmp_path)
    upgrade(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.downgrade(cfg, "base")
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(url)
    assert schema_differences(url) == []


def test_values_round_trip_long_texts_booleans_json_and_times(database_url: str, tmp_path: Path) -> None:
    url = state_url(database_url, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    long_ref = "refs/heads/" + "/".join(["b" * 200, "c" * 200])  # git accepts it; more than a VARCHAR(255)
    label = "Déploiement ✓ " + "d" * 300  # a YAML displayName or build number of any length
    queued = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    detail = {"nested": {"list": [1, None, True]}, "text": "ü"}
    try:
        with transaction(sessions) as session:
            pipeline = Pipeline(name="p", folder="/".join(["f" * 60] * 6), repo="r", yaml_path="y/" * 600 + "ci.yml")
            session.add(pipeline)
            session.flush()
            run = Run(
                pipeline_id=pipeline.id, number=1, build_number=label, reason="Manual", source_branch=long_ref,
                source_version="0" * 40, state="queued", cancel_requested=True, queued_at=queued,
                parameters=detail, tags=[label],
            )
            session.add(run)
            session.flush()
            session.add(RunStage(run_id=run.id, position=0, name="S" * 300, display_name=label, state="pending"))
            job = RunJob(run_id=run.id, stage="S" * 300, position=0, name="J" * 300, display_name=label,
                         environment="e" * 100, state="pending", continue_on_error=False)
            session.add(job)
            session.flush()
            session.add(RunStep(job_id=job.id, step_key="k" * 200, position=0, name="s" * 300, display_name=label,
                                state="pending"))
            session.add(PushEvent(push_id="x", seq=0, repo="r", ref=long_ref, old_sha="0" * 40, new_sha="1" * 40))
            session.add(AuditEntry(action="login.failed", actor="u" * 300, target="t" * 300, detail=detail))
        with transaction(sessions) as session:
            run = session.scalars(select(Run)).one()
            assert (run.build_number, run.source_branch, run.tags, run.parameters) == (label, long_ref, [label], detail)
            assert run.cancel_requested is True and run.queued_at == queued and run.started_at is None
            assert run.queued_at + timedelta(hours=1) == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
            job = session.scalars(select(RunJob)).one()
            assert (job.name, job.display_name, job.continue_on_error) == ("J" * 300, label, False)
            assert session.scalars(select(RunStep.step_key)).one() == "k" * 200
            assert session.scalars(select(PushEvent.ref)).one() == long_ref
            entry = session.scalars(select(AuditEntry)).one()
            assert (entry.actor, entry.detail) == ("u" * 300, detail)
            assert entry.at.tzinfo is not None
    finally:
        engine.dispose()


def test_a_postgresql_url_without_a_driver_name_uses_psycopg(postgres: PostgresServer) -> None:
    url = postgres.create_database().replace("postgresql+psycopg://", "postgresql://")
    upgrade(url)
    engine = make_engine(url)
    try:
        assert engine.dialect.driver == "psycopg"
        assert "runs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_init_on_a_database_it_cannot_open_says_which_and_what_to_check(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"postgresql://mlyard:s3cret@127.0.0.1:{free_port()}/state"
    failed = mlyard("init", "--database-url", url, home=home, check=False)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith(
        f"error: cannot open the state database postgresql://mlyard:***@127.0.0.1:{url.split(':')[3]}: "
    ), failed.stderr
    assert "Traceback" not in failed.stderr and "s3cret" not in failed.stderr
    assert "check the database URL" in failed.stderr and not home.exists()
    bad = mlyard("init", "--database-url", "state.db", home=home, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: database URL 'state.db' cannot be read; use sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
    )
