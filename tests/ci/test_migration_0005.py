"""Migration 0005 on a database with history: run numbers go on, old pushes are never triggered again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mlyard.db.engine import MIGRATIONS_DIR


def alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_upgrade_keeps_numbers_and_marks_old_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic(url), "0004")
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(
            sa.text(
                "INSERT INTO pipelines (id, name, folder, repo, yaml_path, created_by, created_at) "
                "VALUES (1, 'p', '', 'r', 'ci.yml', 'admin', '2026-11-01 00:00:00'), "
                "(2, 'q', '', 'r', 'q.yml', 'admin', '2026-11-01 00:00:00')"
            )
        )
        for number in (1, 2, 7):
            db.execute(
                sa.text(
                    "INSERT INTO runs (pipeline_id, number, build_number, reason, source_branch, source_version, "
                    "requested_for, state, parameters, variables, waiting_for, message, tags, cancel_requested, "
                    "queued_at) VALUES (1, :n, '', 'Manual', 'refs/heads/master', 'abc', 'admin', 'succeeded', "
                    "'{}', '{}', '[]', '', '[]', 0, '2026-11-01 00:00:00')"
                ),
                {"n": number},
            )
        db.execute(
            sa.text(
                "INSERT INTO push_events (push_id, seq, repo, ref, old_sha, new_sha, pusher, commits, "
                "changed_paths, created_at) VALUES ('x', 0, 'r', 'refs/heads/master', 'a', 'b', 'admin', '[]', "
                "'[]', '2026-11-01 00:00:00')"
            )
        )
    command.upgrade(alembic(url), "0005")
    with engine.begin() as db:
        numbers = dict(db.execute(sa.text("SELECT name, last_run_number FROM pipelines")).all())
        pending = db.execute(sa.text("SELECT COUNT(*) FROM push_events WHERE triggered_at IS NULL")).scalar()
        errors = db.execute(sa.text("SELECT DISTINCT errors FROM runs")).scalars().all()
    assert numbers == {"p": 7, "q": 0}
    assert pending == 0
    assert errors == ["[]"]
    command.downgrade(alembic(url), "0004")
    engine.dispose()
