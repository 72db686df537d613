"""Stage changes: aliases as the source of truth, the legacy stages mirrored, history, rollback, errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import mlflow.pyfunc
import pytest
from mlflow import MlflowClient

from mlyard.errors import InvalidInput, NotFound
from mlyard.registry import Registry
from tests.conftest import mlflow_globals

from .conftest import ROWS, Store

# Every registry call in this module must keep MLflow's stage deprecation notices to itself.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")


def stages(registry: Registry, name: str) -> dict[int, tuple[str, str]]:
    """{version: (stage, legacy stage)}."""
    return {v["version"]: (v["stage"], v["legacy_stage"]) for v in registry.show_model(name)["versions"]}


def test_staging_then_production_moves_aliases_and_mirrors_legacy_stages(
    registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    entry = registry.stage(name, 1, "staging", by="ann")
    assert (entry["version"], entry["from"], entry["to"], entry["by"]) == (1, "None", "Staging", "ann")
    assert registry.show_model(name)["aliases"] == {"staging": 1}
    assert stages(registry, name)[1] == ("Staging", "Staging")

    registry.stage(name, "1", "PRODUCTION")
    assert registry.show_model(name)["aliases"] == {"production": 1}
    registry.stage(name, 2, "Staging")
    entry = registry.promote(name, 2, by="ci", reason="gate passed")
    assert (entry["from"], entry["to"], entry["archived"], entry["previous_production"]) == (
        "Staging",
        "Production",
        1,
        1,
    )
    model = registry.show_model(name)
    assert model["aliases"] == {"production": 2}
    assert (model["production"], model["staging"]) == (2, None)
    assert stages(registry, name) == {
        1: ("Archived", "Archived"),
        2: ("Production", "Production"),
        3: ("None", "None"),
    }


def test_none_and_archived_remove_the_aliases_of_the_version(
    registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    registry.stage(name, 1, "Production")
    registry.stage(name, 2, "Staging")
    registry.stage(name, 2, "none")
    registry.stage(name, 1, "Archived")
    assert registry.show_model(name)["aliases"] == {}
    assert stages(registry, name) == {1: ("Archived", "Archived"), 2: ("None", "None")}
    assert [(e["version"], e["from"], e["to"]) for e in registry.history(name)] == [
        (1, "None", "Production"),
        (2, "None", "Staging"),
        (2, "Staging", "None"),
        (1, "Production", "Archived"),
    ]


def test_a_new_staging_version_sends_the_previous_one_back_to_none(
    registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    registry.stage(name, 1, "Staging")
    registry.stage(name, 2, "Staging")
    assert stages(registry, name) == {1: ("None", "None"), 2: ("Staging", "Staging")}


def test_models_uris_by_alias_and_by_legacy_stage_load_the_right_version(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    registry.promote(name, 1)
    registry.promote(name, 2)
    registry.stage(name, 1, "Staging")
    expected = {"Production": store.logged[1].predictions, "Staging": store.logged[0].predictions}
    with mlflow_globals(store.uri), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # loading by legacy stage is the user's own choice here
        for stage, predictions in expected.items():
            for uri in (f"models:/{name}/{stage}", f"models:/{name}@{stage.lower()}"):
                model = mlflow.pyfunc.load_model(uri)
                assert [int(p) for p in model.predict(ROWS)] == predictions, uri


def test_history_records_who_when_why_and_rollback_walks_back(
    registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    for version in (1, 2, 3):
        registry.promote(name, version, by=f"user{version}", reason=f"release {version}")
    entry = registry.rollback(name, by="ops", reason="bad predictions")
    assert (entry["version"], entry["from"], entry["to"], entry["action"]) == (2, "Archived", "Production", "rollback")
    assert (entry["by"], entry["reason"], entry["archived"]) == ("ops", "bad predictions", 3)
    assert registry.version_for(name)["version"] == 2
    assert registry.rollback(name)["version"] == 1
    assert stages(registry, name) == {
        1: ("Production", "Production"),
        2: ("Archived", "Archived"),
        3: ("Archived", "Archived"),
    }
    history = registry.history(name)
    assert [(e["version"], e["action"], e["by"]) for e in history[:3]] == [
        (1, "promote", "user1"),
        (2, "promote", "user2"),
        (3, "promote", "user3"),
    ]
    assert all(e["at"].endswith("Z") for e in history)
    with pytest.raises(NotFound) as caught:
        registry.rollback(name)
    assert str(caught.value) == (
        f"model {name!r} has no previous Production version to roll back to (version 1 is the first one in its history)"
    )


def test_rollback_without_production(registry: Registry, make_model: Callable[[int], str]) -> None:
    name = make_model(1)
    with pytest.raises(NotFound) as caught:
        registry.rollback(name)
    assert str(caught.value) == f"model {name!r} has no version in Production: nothing to roll back"


def test_version_for_resolves_numbers_stages_and_aliases(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    registry.promote(name, 2)
    registry.stage(name, 1, "Staging")
    production = registry.version_for(name)
    assert (production["version"], production["stage"], production["aliases"]) == (2, "Production", ["production"])
    assert production["run_id"] == store.logged[1].run_id
    assert production["metrics"] == {"accuracy": pytest.approx(0.8)}
    assert production["uri"] == f"models:/{name}/2"
    assert registry.version_for(name, stage="staging")["version"] == 1
    assert registry.version_for(name, alias="production")["version"] == 2
    assert registry.version_for(name, version="1")["stage"] == "Staging"


def test_tag_version_and_list_models(registry: Registry, make_model: Callable[[int], str]) -> None:
    name = make_model(2)
    registry.promote(name, 1)
    tagged = registry.tag_version(name, 1, {"git.commit": "abc123", "tests": "passed", "attempt": 2})
    assert tagged["tags"] == {"git.commit": "abc123", "tests": "passed", "attempt": "2"}
    registry.stage(name, 2, "Staging")
    summary = next(m for m in registry.list_models() if m["name"] == name)
    assert {k: summary[k] for k in ("latest_version", "version_count", "production", "staging")} == {
        "latest_version": 2,
        "version_count": 2,
        "production": 1,
        "staging": 2,
    }
    shown = registry.show_model(name)
    assert "mlyard.history" not in shown["tags"]
    assert shown["versions"][0]["tags"]["git.commit"] == "abc123"
    assert len(shown["history"]) == 2


def test_the_registry_ignores_mlflow_global_tracking_uri(
    store: Store, tmp_path, make_model: Callable[[int], str]
) -> None:
    name = make_model(1)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with mlflow_globals(other):
        registry = Registry(store.uri)
        registry.promote(name, 1)
        assert registry.version_for(name)["version"] == 1
    assert not (tmp_path / "other.db").exists()


def test_no_future_warning_reaches_the_caller(registry: Registry, make_model: Callable[[int], str]) -> None:
    name = make_model(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.stage(name, 1, "Staging")
        registry.promote(name, 1)
        registry.promote(name, 2)
        registry.rollback(name)
        registry.stage(name, 2, "Archived")
        registry.show_model(name)
        registry.list_models()
    assert [w for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)] == []


ERRORS = [
    ("unknown model", lambda r, n: r.stage("no-such-model", 1, "Production"), NotFound,
     "model 'no-such-model' not found in the registry"),
    ("unknown version", lambda r, n: r.stage(n, 9, "Production"), NotFound,
     "model '{n}' has no version 9 (versions: 1, 2)"),
    ("unknown stage", lambda r, n: r.stage(n, 1, "Prod"), InvalidInput,
     "invalid stage 'Prod': choose one of Staging, Production, Archived, None"),
    ("bad version", lambda r, n: r.stage(n, "x", "Staging"), InvalidInput,
     "invalid model version 'x': versions are whole numbers from 1"),
    ("version zero", lambda r, n: r.promote(n, 0), InvalidInput,
     "invalid model version 0: versions are whole numbers from 1"),
    ("empty production", lambda r, n: r.version_for(n), NotFound, "model '{n}' has no version in Production"),
    ("empty staging", lambda r, n: r.version_for(n, stage="Staging"), NotFound,
     "model '{n}' has no version in Staging"),
    ("missing alias", lambda r, n: r.version_for(n, alias="champion"), NotFound,
     "model '{n}' has no version with alias 'champion'"),
    ("missing version", lambda r, n: r.version_for(n, version=3), NotFound,
     "model '{n}' has no version 3 (versions: 1, 2)"),
    ("archived is many", lambda r, n: r.version_for(n, stage="archived"), InvalidInput,
     "stage 'Archived' can hold many versions: give Staging or Production, or a version number"),
    ("version and stage", lambda r, n: r.version_for(n, version=1, stage="Staging"), InvalidInput,
     "give one of a model version, a stage or an alias, not several"),
    ("show unknown", lambda r, n: r.show_model("ghost"), NotFound, "model 'ghost' not found in the registry"),
    ("history unknown", lambda r, n: r.history("ghost"), NotFound, "model 'ghost' not found in the registry"),
    ("tag unknown version", lambda r, n: r.tag_version(n, 5, {"a": "b"}), NotFound,
     "model '{n}' has no version 5 (versions: 1, 2)"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "error", "message"), ERRORS, ids=[case[0] for case in ERRORS])
def test_errors(
    registry: Registry, make_model: Callable[[int], str], case: str, call, error: type, message: str
) -> None:
    name = make_model(2)
    with pytest.raises(error) as caught:
        call(registry, name)
    assert str(caught.value) == message.format(n=name)
    assert registry.show_model(name)["aliases"] == {}
    assert registry.history(name) == []


def test_legacy_stage_set_directly_in_mlflow_is_brought_back_in_line(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, "3", "Production")
    registry.promote(name, 1)
    assert stages(registry, name) == {
        1: ("Production", "Production"),
        2: ("None", "None"),
        3: ("Archived", "Archived"),
    }
