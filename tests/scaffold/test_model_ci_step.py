"""Model CI in one process (`mlops/registry.py ci`, the promote-model pipeline's step): find the version in
Staging, run tests/model, the gate, tag, promote; against a real SQLite MLflow store, as the pipeline runs it
(a new Python process in the project, PYTHONPATH=src)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.scaffold.conftest import run_python
from tests.scaffold.test_problem_types import Project, demo, fitted_baseline, register, store  # noqa: F401

pytestmark = pytest.mark.slow


def ci(project: Project, uri: str, model: str, junit: Path) -> tuple[int, str]:
    done = run_python(project.root, "mlops/registry.py", "--model", model, "ci", "--junitxml", str(junit),
                      "--tag", "git_commit=abc123", env={"MLFLOW_TRACKING_URI": uri,
                                                         "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("demo", ["binary"], indirect=True)
def test_model_ci_finds_tests_gates_tags_and_promotes_in_one_process(demo: Project, store: str, tmp_path: Path) -> None:  # noqa: F811
    from mlflow import MlflowClient

    model = "ci-one-process"
    junit = tmp_path / "TEST-model.xml"
    client = MlflowClient()
    client.create_registered_model(model)
    code, out = ci(demo, store, model, junit)
    assert code == 0, out
    assert "##vso[task.setvariable variable=found;isOutput=true]false" in out
    assert "##vso[task.complete result=SucceededWithIssues;]no model version in Staging: nothing to promote" in out

    good = register(demo, demo.module("train").train(demo.module("data").load_split()).model, model)
    client.set_registered_model_alias(model, "staging", good)
    code, out = ci(demo, store, model, junit)
    assert code == 0, out
    assert f"##vso[task.setvariable variable=version;isOutput=true]{good}" in out
    assert "##vso[task.setvariable variable=found;isOutput=true]true" in out
    assert "all gates passed" in out and "model CI steps: find the version in Staging" in out
    promoted = client.get_model_version(model, good)
    assert str(client.get_model_version_by_alias(model, "production").version) == good
    assert promoted.tags == {"git_commit": "abc123", "test_status": "passed"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert promoted.current_stage == "Production"
    report = junit.read_text()
    assert 'failures="0"' in report and 'errors="0"' in report and "test_metric_meets_its_gate" in report

    bad = register(demo, fitted_baseline(demo), model)
    client.set_registered_model_alias(model, "staging", bad)
    code, out = ci(demo, store, model, junit)
    assert code == 1, out
    assert "##vso[task.logissue type=error]model gate failed: accuracy" in out
    assert (f"##vso[task.logissue type=error]{model} version {bad} failed its model tests and the gate and stays "
            "in Staging") in out  # fmt: skip
    assert client.get_model_version(model, bad).tags["test_status"] == "failed"
    assert str(client.get_model_version_by_alias(model, "production").version) == good
