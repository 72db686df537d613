"""The web UI's direct reading of an embedded MLflow store agrees with the registry adapter (mlyard.registry),
and its rollback rule with the adapter's; reading an environment never creates its store."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from mlyard.errors import NotFound
from mlyard.registry import Registry, init_store, sqlite_path, sqlite_uri
from mlyard.services import model_views
from tests.registry.conftest import Store, log_models

pytestmark = pytest.mark.slow  # logs three MLflow models (seconds), like tests/registry
_names = itertools.count(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    env = tmp_path_factory.mktemp("env")
    uri = sqlite_uri(env / "mlflow.db")
    init_store(uri, None)
    return Store(env=env, uri=uri, logged=log_models(uri))


@pytest.fixture(scope="module")
def registry(store: Store) -> Registry:
    return Registry(store.uri)


@pytest.fixture
def make_model(store: Store, registry: Registry) -> Callable[[int], str]:
    def make(count: int) -> str:
        name = f"view-{next(_names)}"
        registry.client.create_registered_model(name)
        for index in range(count):
            item = store.logged[index % len(store.logged)]
            registry.client.create_model_version(name, item.artifact_location, run_id=item.run_id,
                                                 model_id=item.model_id)  # fmt: skip
        return name

    return make


def _read(store: Store, name: str) -> model_views.ModelDetail:
    with model_views._connect(sqlite_path(store.uri)) as conn:
        return model_views._sqlite_model(conn, "dev", name)


def test_direct_reading_agrees_with_the_registry(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    registry.stage(name, 1, "Production", by="ann", reason="first")
    registry.stage(name, 2, "Production", by="bob", reason="second")
    registry.stage(name, 3, "Staging", by="ann")
    registry.tag_version(name, 2, {"run_url": "http://h/mlyard/_build/results?buildId=42", "test_status": "passed"})
    registry.client.set_registered_model_alias(name, "champion", "1")
    expected = registry.show_model(name)
    found = _read(store, name)

    assert found.aliases == expected["aliases"]
    assert found.tags == expected["tags"]
    assert [v.version for v in found.versions] == sorted((v["version"] for v in expected["versions"]), reverse=True)
    for version in expected["versions"]:
        mine = found.version(version["version"])
        assert (mine.stage, list(mine.aliases), mine.tags, mine.metrics, mine.run_id, mine.source, mine.status) == (
            version["stage"], version["aliases"], version["tags"], version["metrics"], version["run_id"],
            version["source"], version["status"])  # fmt: skip
        assert mine.created == version["created"]
        assert mine.training is not None and mine.training.run_id == version["run_id"]
    assert [(e.version, e.to_stage, e.by, e.reason) for e in reversed(found.history)] == [
        (e["version"], e["to"], e["by"], e["reason"]) for e in expected["history"]
    ]
    assert found.version(2).ci_run == 42 and found.version(1).ci_run is None
    summary = next(m for m in model_views._sqlite_models_of(sqlite_path(store.uri)) if m.name == name)
    listed = next(m for m in registry.list_models() if m["name"] == name)
    assert (summary.latest_version, summary.version_count, summary.production, summary.staging) == (
        listed["latest_version"], listed["version_count"], listed["production"], listed["staging"])  # fmt: skip


def test_the_rollback_target_is_the_registrys(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    for version in (1, 2, 3):
        registry.promote(name, version, by="ci")
    for expected in (2, 1):
        detail = _read(store, name)
        assert model_views.rollback_target(detail.history, detail.production) == expected
        assert registry.rollback(name, by="ops")["version"] == expected
    detail = _read(store, name)
    assert model_views.rollback_target(detail.history, detail.production) is None
    with pytest.raises(NotFound):
        registry.rollback(name)


def test_compare_lists_metrics_params_and_tags_side_by_side(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    registry.tag_version(name, 2, {"note": "<b>new</b>"})
    rows = model_views.compare(_read(store, name), 1, 2)
    accuracy = next(row for row in rows if row[:2] == ("metric", "accuracy"))
    assert accuracy[2:] == (pytest.approx(0.7), pytest.approx(0.8))
    assert ("tag", "note", None, "<b>new</b>") in rows
    with pytest.raises(NotFound, match="has no version 9"):
        model_views.compare(_read(store, name), 1, 9)


def test_an_unknown_model_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="model 'absent' not found"):
        _read(store, "absent")


def test_a_database_of_another_schema_is_not_read_directly(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "mlflow.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE registered_models (name TEXT)")
    with pytest.raises(model_views._Unrecognised), model_views._connect(db) as conn:
        model_views._sqlite_model(conn, "dev", "x")
