"""The training entry point (src/<package>/notebooks/train.py) run as a plain Python script."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.scaffold.conftest import run_python

NOTEBOOK = "src/{pkg}/notebooks/train.py"


def test_the_plain_notebook_says_what_to_implement_and_exits_1(plain_project: Path) -> None:
    proc = run_python(plain_project, NOTEBOOK.format(pkg="p_9_plain"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(
        "TODO: implement load_data() in src/p_9_plain/data.py: return a pandas DataFrame with your feature "
        "columns and a 'target' column\n\nTo make this project train, implement:\n"
    )
    assert "build_model(): an unfitted scikit-learn estimator" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_demo_notebook_without_a_tracking_uri_trains_then_exits_2(demo_project: Path) -> None:
    proc = run_python(demo_project, NOTEBOOK.format(pkg="my_model"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.startswith("accuracy: ")
    assert proc.stderr.startswith("MLFLOW_TRACKING_URI is not set, so the model was trained but not logged. ")
    assert "Run this notebook as a job in the environment's workspace (which sets it)" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_the_demo_notebook_registers_a_model_that_passes_the_model_tests(demo_project: Path, tmp_path: Path) -> None:
    """Train and register in a real MLflow (SQLite), then run the project's model CI tests on that version."""
    from mlflow import MlflowClient

    from mlyard.registry import init_store

    project = Path(shutil.copytree(demo_project, tmp_path / "my-model"))  # MLflow writes mlruns/ into the cwd
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_store(uri, tmp_path / "mlartifacts")  # the schema once, before another process uses the store
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    proc = run_python(project, NOTEBOOK.format(pkg="my_model"), env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (version,) = client.search_model_versions("name = 'my-model'")
    run = client.get_run(version.run_id)
    assert proc.stdout.splitlines()[-2:] == [
        f"MLflow run id: {version.run_id}",
        f"registered model: my-model version {version.version}",
    ]
    assert client.get_experiment(run.info.experiment_id).name == "/ml_apps/my-model"
    assert run.data.params == {"c": "1.0", "max_iter": "1000", "seed": "42"}
    assert set(run.data.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert run.data.tags["app"] == "my-model"
    # the baseline the monitor report of this version reads (issue 14): the training features and predictions
    from mlyard.monitoring.profile import load_profile

    baseline = load_profile(uri, version.run_id)
    assert baseline is not None and baseline.rows > 100 and baseline.prediction is not None
    assert baseline.prediction.kind == "categorical" and len(baseline.features) == 30
    assert {f.kind for f in baseline.features} == {"numeric"}

    client.set_registered_model_alias("my-model", "staging", version.version)
    proc = run_python(
        project,
        *("-m", "pytest", "tests/model", "-q", "-p", "no:cacheprovider"),
        env={"MLFLOW_TRACKING_URI": uri, "MODEL_URI": "models:/my-model@staging"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout.splitlines()[-1]
