"""Migration 0008_schedules on a database with history: runs, their stages and jobs stay (runs gets its
column in place, never copied), and the downgrade keeps them too."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from tests.ci.test_migration_0005 import alembic


def counts(engine: sa.Engine) -> list[int | None]:
    with engine.begin() as db:
        tables = ("runs", "run_stages", "run_jobs")
        return [db.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() for table in tables]


def test_upgrade_and_downgrade_keep_the_runs_with_their_stages_and_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic(url), "0006")
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("PRAGMA foreign_keys=ON"))
        db.execute(
            sa.text(
                "INSERT INTO pipelines (id, name, folder, repo, yaml_path, created_by, created_at, last_run_number) "
                "VALUES (1, 'p', '', 'r', 'ci.yml', 'admin', '2026-11-01 00:00:00', 1)"
            )
        )
        db.execute(
            sa.text(
                "INSERT INTO runs (id, pipeline_id, number, build_number, reason, source_branch, source_version, "
                "requested_for, state, parameters, variables, waiting_for, message, errors, tags, cancel_requested, "
                "queued_at) VALUES (1, 1, 1, '', 'Manual', 'refs/heads/master', 'abc', 'admin', 'succeeded', "
                "'{}', '{}', '[]', '', '[]', '[]', 0, '2026-11-01 00:00:00')"
            )
        )
        db.execute(
            sa.text(
                "INSERT INTO run_stages (run_id, position, name, display_name, state, depends_on, condition, message) "
                "VALUES (1, 0, '__default', '', 'succeeded', '[]', 'succeeded()', '')"
            )
        )
        db.execute(
            sa.text(
                "INSERT INTO run_jobs (run_id, stage, position, name, display_name, kind, environment, state, "
                "depends_on, condition, continue_on_error, approval, attempt, message, agent, outputs, secret_outputs) "
                "VALUES (1, '__default', 0, 'Job', '', 'job', '', 'succeeded', '[]', 'succeeded()', 0, '', 1, '', '', "
                "'{}', '{}')"
            )
        )
    assert counts(engine) == [1, 1, 1]
    command.upgrade(alembic(url), "0008_schedules")
    assert counts(engine) == [1, 1, 1]
    with engine.begin() as db:
        assert db.execute(sa.text("SELECT schedule_id FROM runs")).scalar() is None
        assert db.execute(sa.text("SELECT COUNT(*) FROM schedules")).scalar() == 0
    command.downgrade(alembic(url), "0006")
    assert counts(engine) == [1, 1, 1]
    with engine.begin() as db:
        assert "schedule_id" not in {row[1] for row in db.execute(sa.text("PRAGMA table_info(runs)"))}
    engine.dispose()
