"""MLflow's process-wide URIs do not leak from one test module to the next (tests/conftest.py): a module that leaves
one set fails at its end, and `mlflow_globals` puts everything back, MLFLOW_REGISTRY_URI included."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest
from tests.conftest import mlflow_global_state, mlflow_globals


def test_mlflow_globals_puts_back_the_uris_and_their_variables(tmp_path: Path) -> None:
    import mlflow

    before = mlflow_global_state()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_globals(uri):
        assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == uri
        assert os.environ["MLFLOW_REGISTRY_URI"] == os.environ["MLFLOW_TRACKING_URI"] == uri  # servers would inherit
    assert mlflow_global_state() == before
    assert uri not in (mlflow.get_tracking_uri(), mlflow.get_registry_uri())


def _module_end(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """tests/conftest.py's teardown hook at the end of this module (the next test in another file)."""
    teardown = conftest.pytest_runtest_teardown(request.node, SimpleNamespace(path=tmp_path / "test_next.py"))
    next(teardown)
    with pytest.raises(StopIteration):
        teardown.send(None)


def test_a_module_that_leaves_the_registry_uri_set_fails_at_its_end(request: pytest.FixtureRequest,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    import mlflow

    before = mlflow_global_state()
    # What the serving tests' session store did: set both URIs and never put them back. `set_registry_uri(None)`
    # alone is no cure either: it leaves MLFLOW_REGISTRY_URI in the environment.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'leak.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'leak.db'}")
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    with pytest.raises(pytest.fail.Exception, match="MLFLOW_REGISTRY_URI: None -> 'sqlite:///") as failed:
        _module_end(request, tmp_path)
    assert "MLFLOW_TRACKING_URI" in str(failed.value) and "tests.conftest.mlflow_globals" in str(failed.value)
    assert mlflow_global_state() == before  # and the next module starts clean


def test_a_module_that_leaves_everything_as_it_found_it_passes(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with mlflow_globals(f"sqlite:///{tmp_path / 'mlflow.db'}"):
        pass
    _module_end(request, tmp_path)
