"""The store: tracking URIs, one-time initialisation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlyard.errors import InvalidInput, OperationFailed
from mlyard.registry import Registry, check_tracking_uri, init_store, sqlite_uri
from mlyard.registry.store import file_lock, is_initialised


@pytest.mark.slow
def test_init_store_is_idempotent_and_puts_artifacts_next_to_the_database(tmp_path: Path) -> None:
    db = tmp_path / "envs" / "dev" / "mlflow.db"
    uri = sqlite_uri(db)
    assert uri == f"sqlite:///{db}"
    init_store(uri, None)
    assert is_initialised(db)
    mtime = db.stat().st_mtime_ns
    init_store(uri, None)
    assert db.stat().st_mtime_ns == mtime
    with sqlite3.connect(db) as conn:
        location = conn.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone()
    assert location == ((db.parent / "mlartifacts" / "0").as_uri(),)
    assert Registry(uri).list_models() == []


def test_a_remote_tracking_uri_is_accepted_as_is(tmp_path: Path) -> None:
    init_store("http://127.0.0.1:1/", tmp_path / "unused")
    assert not (tmp_path / "unused").exists()
    assert check_tracking_uri("https://mlflow.example.com") == "https://mlflow.example.com"


@pytest.mark.slow
def test_a_registry_on_a_new_sqlite_path_initialises_it_first(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "fresh" / "mlflow.db")
    assert Registry(uri).list_models() == []
    assert is_initialised(tmp_path / "fresh" / "mlflow.db")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "file:///tmp/mlruns",
            "unsupported MLflow tracking URI 'file:///tmp/mlruns': use sqlite:///<path>/mlflow.db "
            "(the embedded store) or the http(s):// URL of an MLflow tracking server",
        ),
        (
            "sqlite:///:memory:",
            "unsupported MLflow tracking URI 'sqlite:///:memory:': the SQLite store needs a file path",
        ),
        ("http://", "unsupported MLflow tracking URI 'http://': the URL has no host"),
    ],
)
def test_unsupported_tracking_uris(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        init_store(uri, None)
    assert str(caught.value) == message
    with pytest.raises(InvalidInput):
        Registry(uri)


def test_a_held_lock_makes_the_next_writer_wait_then_give_up(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "m.lock"
    with (
        file_lock(path, what="model 'm'"),
        pytest.raises(OperationFailed) as caught,
        file_lock(path, what="model 'm'", timeout=0.1),
    ):
        pass
    assert str(caught.value) == (
        f"model 'm' has been locked by another process for more than 0.1s (lock file {path}); "
        "wait for it to finish and try again"
    )
    with file_lock(path, what="model 'm'", timeout=0.1):
        pass
