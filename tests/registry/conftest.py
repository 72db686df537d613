"""A real MLflow store on SQLite in a temporary folder, with three small scikit-learn models logged in it.

Registered models in tests point their versions at those logged models (`make_model`), so each test owns
a model name of its own and no test depends on another's stages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlyard.registry import Registry, init_store, sqlite_uri
from tests.conftest import mlflow_globals

ROWS = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.8], [0.8, 0.2], [0.5, 0.4], [0.4, 0.5]]
# Three label patterns: the three models predict differently on ROWS.
LABELS = [[0, 1, 0, 1, 1, 0], [1, 0, 1, 0, 0, 1], [0, 0, 1, 1, 1, 1]]
PIP_REQUIREMENTS = ["scikit-learn", "mlflow"]


@dataclass(frozen=True)
class Logged:
    run_id: str
    model_uri: str
    model_id: str
    artifact_location: str
    predictions: list[int]


@dataclass(frozen=True)
class Store:
    env: Path
    uri: str
    logged: list[Logged]


def log_models(uri: str) -> list[Logged]:
    logged = []
    with mlflow_globals(uri):
        for index, labels in enumerate(LABELS):
            model = LogisticRegression(C=10.0).fit(ROWS, labels)
            with mlflow.start_run() as run:
                mlflow.log_metric("accuracy", 0.7 + index / 10)
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP_REQUIREMENTS)
            predictions = [int(p) for p in model.predict(ROWS)]
            location = mlflow.get_logged_model(info.model_id).artifact_location
            logged.append(Logged(run.info.run_id, info.model_uri, info.model_id, location, predictions))
    assert len({tuple(item.predictions) for item in logged}) == 3
    return logged


def register_versions(uri: str, model: str) -> list[Logged]:
    """Three versions of `model` in the (initialised) registry at `uri`, each predicting differently on ROWS."""
    init_store(uri)
    items = log_models(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(model)
    for item in items:
        client.create_model_version(model, item.artifact_location, run_id=item.run_id, model_id=item.model_id)
    return items


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    env = tmp_path_factory.mktemp("env")
    uri = sqlite_uri(env / "mlflow.db")
    init_store(uri, None)
    return Store(env=env, uri=uri, logged=log_models(uri))


@pytest.fixture(scope="session")
def registry(store: Store) -> Registry:
    return Registry(store.uri)


_names = itertools.count(1)


@pytest.fixture
def make_model(store: Store) -> Callable[[int], str]:
    """Register a new model with `count` versions (version n uses logged model (n-1) % 3); return its name."""
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)

    def make(count: int) -> str:
        name = f"model-{next(_names)}"
        client.create_registered_model(name)
        for index in range(count):
            item = store.logged[index % len(store.logged)]
            # The artifact location, not `models:/m-...`: MLflow resolves the latter with the global tracking URI.
            client.create_model_version(name, item.artifact_location, run_id=item.run_id, model_id=item.model_id)
        return name

    return make
