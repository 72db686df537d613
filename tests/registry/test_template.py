"""A new embedded store is written from the committed schema of the pinned MLflow (mlyard.registry.template):
the same store MLflow's migrations create, made without MLflow, and MLflow uses it as its own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from mlyard.registry import init_store, sqlite_uri
from mlyard.registry.store import migrate_store
from mlyard.registry.template import create_store, installed_mlflow, schema_file


def clauses(sql: str | None) -> list[str]:
    """The lines of a CREATE statement, in any order: MLflow's migrations themselves write the constraints of
    a table in varying order (e.g. those of `runs`, from one migration to the next); columns are compared in
    order through `PRAGMA table_info`."""
    return sorted(line.strip().rstrip(",").strip() for line in (sql or "").splitlines())


def contents(db: Path) -> dict[str, object]:
    """Everything of a store but the default experiment's times: its objects (tables with their columns,
    indexes, trigger), the rows of every table and the database's settings."""
    with sqlite3.connect(db) as conn:
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        objects = sorted((kind, name, table, clauses(sql)) for kind, name, table, sql in master)
        rows, columns = {}, {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows[table] = sorted(map(repr, conn.execute(f'SELECT * FROM "{table}"')))
            columns[table] = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        experiment = conn.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage, workspace, "
                                  "creation_time = last_update_time FROM experiments").fetchall()  # fmt: skip
        pragmas = [conn.execute(f"PRAGMA {name}").fetchone() for name in ("user_version", "auto_vacuum", "encoding")]
    rows.pop("experiments")
    return {"objects": objects, "columns": columns, "rows": rows, "experiments": experiment, "pragmas": pragmas}


def test_the_pinned_mlflow_has_its_schema_file() -> None:
    version = installed_mlflow()
    assert version is not None and schema_file(version).is_file(), (
        f"no schema file for MLflow {version}: run `python scripts/mlflow_schema.py` after changing the pin"
    )


def test_a_store_from_the_schema_file_is_the_store_mlflow_creates(tmp_path: Path) -> None:
    by_mlflow, by_mlyard = tmp_path / "mlflow" / "mlflow.db", tmp_path / "mlyard env" / "mlflow.db"
    by_mlflow.parent.mkdir()
    by_mlyard.parent.mkdir()
    migrate_store(by_mlflow, tmp_path / "mlflow" / "mlartifacts")
    assert create_store(by_mlyard, tmp_path / "mlyard env" / "mlartifacts")
    expected, found = contents(by_mlflow), contents(by_mlyard)
    assert found["experiments"] == [(0, "Default", (tmp_path / "mlyard env" / "mlartifacts" / "0").as_uri(), "active",
                                     "default", 1)]  # fmt: skip
    assert expected["experiments"] == [(0, "Default", (tmp_path / "mlflow" / "mlartifacts" / "0").as_uri(), "active",
                                        "default", 1)]  # fmt: skip
    assert {k: v for k, v in found.items() if k != "experiments"} == {
        k: v for k, v in expected.items() if k != "experiments"
    }
    # MLflow opens it as its own (its schema check passes, nothing to migrate) and uses it
    client = MlflowClient(tracking_uri=sqlite_uri(by_mlyard), registry_uri=sqlite_uri(by_mlyard))
    assert client.get_experiment("0").artifact_location == (tmp_path / "mlyard env" / "mlartifacts" / "0").as_uri()
    client.create_registered_model("m")
    assert [m.name for m in client.search_registered_models()] == ["m"]
    assert contents(by_mlyard)["rows"]["alembic_version"] == expected["rows"]["alembic_version"]  # not migrated again


def test_init_store_creates_a_new_store_without_importing_mlflow(tmp_path: Path) -> None:
    probe = ("import sys; from pathlib import Path; "
             "from mlyard.registry import init_store, is_initialised, sqlite_uri; "
             "db = Path(sys.argv[1]); init_store(sqlite_uri(db)); init_store(sqlite_uri(db)); "
             "print(is_initialised(db), 'mlflow' in sys.modules)")  # fmt: skip
    db = tmp_path / "env" / "mlflow.db"
    found = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True, timeout=120)
    assert found.stdout.split() == ["True", "False"], found.stderr
    assert sorted(p.name for p in db.parent.iterdir() if p.is_file()) == ["mlflow.db"]  # no part file left


def test_a_database_that_already_has_content_is_migrated_by_mlflow_not_replaced(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
    assert not create_store(db, tmp_path / "mlartifacts")
    init_store(sqlite_uri(db))  # MLflow's migrations, in place
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]
        assert conn.execute("SELECT count(*) FROM registered_models").fetchone() == (0,)
