"""Fixtures: a real MLflow SQLite store holding two versions of a small scikit-learn model, and a
real scoring server process on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlyard.serving.process import Endpoint, start_endpoint
from tests.conftest import free_port, mlflow_globals

MODEL = "test-model"
COLUMNS = ["a", "b", "c"]


@dataclass(frozen=True)
class Store:
    """A temporary MLflow tracking store: version 1 is Production and @champion, 2 is Staging."""

    root: Path
    uri: str
    model: Any  # version 1 loaded with mlflow.pyfunc.load_model

    def predict(self, rows: list[list[float]]) -> list[int]:
        import pandas as pd

        return [int(v) for v in self.model.predict(pd.DataFrame(rows, columns=COLUMNS, dtype="float64"))]


def _train(seed: int) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    target = (features["a"] + 2 * features["b"] - features["c"] > 0).astype(int)
    return features, LogisticRegression().fit(features, target)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import warnings

    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from mlyard.registry import init_store

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # The schema once, before any server process opens the store: as the product creates a new store (from MLflow's
    # schema; MLflow's own Alembic migrations cost about 2 s of CPU in this worker; tests/registry/test_template.py)
    init_store(uri, root / "artifacts")
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("tests", artifact_location=(root / "artifacts").as_uri())
    with mlflow_globals(uri):  # the fluent API's store while the fixture logs; put back for the modules after
        for seed in (1, 2):
            features, model = _train(seed)
            with mlflow.start_run(experiment_id=experiment):
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=MODEL,
                    signature=infer_signature(features, model.predict(features)),
                    pip_requirements=["scikit-learn", "pandas", "numpy"],
                )
        client.set_registered_model_alias(MODEL, "champion", "1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.transition_model_version_stage(MODEL, "1", "Production")
            client.transition_model_version_stage(MODEL, "2", "Staging")
        return Store(root=root, uri=uri, model=mlflow.pyfunc.load_model(f"models:/{MODEL}/1"))


@pytest.fixture(scope="module")
def endpoint(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A scoring server of @champion for one module (test_server.py's last test stops it by its pid)."""
    log = tmp_path_factory.mktemp("endpoint") / "endpoint.log"
    running = start_endpoint(
        f"models:/{MODEL}@champion", port=free_port(), tracking_uri=store.uri, log_file=log
    )
    yield running
    running.stop()
