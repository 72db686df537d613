"""Migration 0006 on a database holding what earlier versions allowed: duplicate active token names are
renamed (not lost, still working), and existing pipelines get their creator as owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from mlyard.db.engine import MIGRATIONS_DIR, make_engine, upgrade


def test_upgrade_renames_duplicate_token_names_and_sets_pipeline_owners(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0004")
    engine = make_engine(url)
    with engine.begin() as db:
        db.execute(text("INSERT INTO users (id, username, is_admin, created_at) VALUES "
                        "(1, 'alice', 0, '2026-01-01'), (2, 'bob', 0, '2026-01-01')"))  # fmt: skip
        for token_id, user_id, name, revoked in [
            (1, 1, "laptop", None),
            (2, 1, "laptop", None),
            (3, 1, "laptop", "2026-02-01"),
            (4, 2, "laptop", None),
            (5, 1, "laptop", None),
        ]:
            db.execute(
                text("INSERT INTO tokens (id, user_id, name, prefix, token_hash, scopes, created_at, revoked_at) "
                     "VALUES (:id, :user, :name, 'myd_x', :hash, 'repo:read', '2026-01-01', :revoked)"),
                {"id": token_id, "user": user_id, "name": name, "hash": f"h{token_id}", "revoked": revoked},
            )  # fmt: skip
        db.execute(text("INSERT INTO repos (id, name, default_branch, allow_force_push, created_by, created_at) "
                        "VALUES (1, 'r', 'master', 0, 'alice', '2026-01-01')"))  # fmt: skip
        db.execute(text("INSERT INTO pipelines (id, name, folder, repo, yaml_path, created_by, created_at) VALUES "
                        "(1, 'p1', '', 'r', 'a.yml', 'bob', '2026-01-01'), "
                        "(2, 'p2', '', 'r', 'a.yml', 'gone', '2026-01-01')"))  # fmt: skip
    engine.dispose()

    upgrade(url)

    engine = make_engine(url)
    with engine.begin() as db:
        names = db.execute(text("SELECT id, name FROM tokens ORDER BY id")).fetchall()
        owners = db.execute(text("SELECT name, owner_id FROM pipelines ORDER BY id")).fetchall()
    assert [tuple(row) for row in names] == [(1, "laptop"), (2, "laptop-2"), (3, "laptop"), (4, "laptop"),
                                             (5, "laptop-5")]  # fmt: skip
    assert [tuple(row) for row in owners] == [("p1", 2), ("p2", None)]
    with pytest.raises(IntegrityError), engine.begin() as db:
        db.execute(text("INSERT INTO tokens (user_id, name, prefix, token_hash, scopes, created_at) "
                        "VALUES (1, 'laptop', 'myd_x', 'h6', 'repo:read', '2026-01-01')"))  # fmt: skip
    with engine.begin() as db:  # a revoked token does not hold its name
        db.execute(text("INSERT INTO tokens (user_id, name, prefix, token_hash, scopes, created_at, revoked_at) "
                        "VALUES (1, 'laptop', 'myd_x', 'h7', 'repo:read', '2026-01-01', '2026-03-01')"))  # fmt: skip
    engine.dispose()
