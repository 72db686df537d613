"""A server start on a database already at the newest revision does not import Alembic (0.4 s of CPU): the head
is read from the migrations' files, and Alembic still migrates a database that is behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from mlyard.db.engine import MIGRATIONS_DIR, at_head, head_revision, make_engine

CHECK = r"""
import json, sys
from mlyard.db.engine import upgrade
upgrade(sys.argv[1])
print(json.dumps({"alembic": "alembic" in sys.modules}))
"""


def alembic_head() -> str:
    heads = ScriptDirectory.from_config(_config()).get_heads()
    assert len(heads) == 1
    return str(heads[0])


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert head_revision() == alembic_head()


def test_a_database_at_head_is_not_migrated_again_and_one_behind_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url)
    assert not at_head(engine)  # a new database: no alembic_version table
    config = _config()
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, _parent_of_head())  # a database one revision behind
    assert not at_head(engine)
    assert _upgrade_in_a_new_process(url) == {"alembic": True}  # Alembic brings it to head
    assert at_head(engine)
    assert _upgrade_in_a_new_process(url) == {"alembic": False}  # at head: nothing imported, nothing done
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == alembic_head()
    engine.dispose()


def _upgrade_in_a_new_process(url: str) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", CHECK, url], capture_output=True, text=True, check=True,
                         env={**os.environ}, timeout=120)  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _parent_of_head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_revision(alembic_head())
    assert revision is not None
    return str(revision.down_revision)
