"""The registry adapter depends on the standard library, mlflow, mlyard.errors, mlyard.imports, mlyard.names,
mlyard.forkserver (the MLflow servers' zygote) and mlyard.asgi_server (uvicorn's server, quieter) only (and uvicorn,
which runs MLflow's server app in `tracking_server`, the environment's MLflow server process, where Werkzeug's
routing rules, MLflow's Flask app's, compile their URL builders on first use; and httpx, with which `rest` talks to
that server)."""

from __future__ import annotations

import mlyard.registry  # noqa: F401 (loaded for foreign_imports)
from tests.imports import foreign_imports


def test_the_adapter_imports_only_the_standard_library_mlflow_errors_and_names() -> None:
    assert foreign_imports("mlyard.registry", third_party=frozenset({"mlflow", "uvicorn", "werkzeug", "httpx"})) == {}
