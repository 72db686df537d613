"""The serving adapter imports no other mlyard layer but `mlyard.errors`, `mlyard.imports`, `mlyard.forkserver`
(standard library only), `mlyard.asgi_server` (uvicorn's server, quieter) and `mlyard.monitoring` (the inference
table's writer, which imports no other mlyard layer either); its supervisor module (`process`) imports no MLflow, so
the platform can use it cheaply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlyard.serving
from tests.imports import imported_modules

PACKAGE = Path(mlyard.serving.__file__).parent
ALLOWED = ("mlyard.serving", "mlyard.errors", "mlyard.imports", "mlyard.forkserver", "mlyard.asgi_server",
           "mlyard.monitoring")


def test_no_other_mlyard_layer() -> None:
    offenders = {
        path.name: sorted(
            module
            for module in imported_modules(path)
            if module.split(".")[0] == "mlyard" and not module.startswith(ALLOWED)
        )
        for path in sorted(PACKAGE.glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_supervisor_imports_the_standard_library_only() -> None:
    for name in ("__init__.py", "process.py"):
        third_party = {
            module
            for module in imported_modules(PACKAGE / name)
            if module.split(".")[0] not in sys.stdlib_module_names and module.split(".")[0] != "mlyard"
        }
        assert third_party <= {"psutil"}, name


def test_monitoring_imports_no_other_mlyard_layer() -> None:
    folder = PACKAGE.parent / "monitoring"
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.split(".")[0] == "mlyard" and
                          not m.startswith("mlyard.monitoring"))
        for path in sorted(folder.glob("*.py"))
    }  # fmt: skip
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_server_imports_no_mlflow_until_it_needs_it() -> None:
    """`import mlyard.app` (every server start, every test server), the registry's stores, locks and stage
    vocabulary, and `Registry` with the REST client (the server's) cost no MLflow import (seconds of CPU); a
    `Registry` on MLflow's own client loads it when it is made."""
    probe = ("import sys, tempfile, mlyard.app, mlyard.registry, mlyard.registry.store; "
             "import mlyard.registry.tracking_server; before = 'mlflow' in sys.modules; "
             "from mlyard.registry import Registry, sqlite_uri; "
             "from mlyard.registry.rest import RestClient; "
             "uri = sqlite_uri(__import__('pathlib').Path(tempfile.mkdtemp()) / 'mlflow.db'); "
             "Registry(uri, client=RestClient(None, 'none')); rest = 'mlflow' in sys.modules; Registry(uri); "
             "print(before, rest, 'mlflow' in sys.modules, Registry.__name__)")  # fmt: skip
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.split() == ["False", "False", "True", "Registry"]


def test_a_scoring_process_imports_scipy_special_before_mlflow(skops_names_mlflow_first: list[str]) -> None:
    """skops names every scipy.special ufunc when it is imported, searching sys.modules in import order for the
    module holding each one (mlyard.serving.server.FIRST_MODULES): a cold scoring process imports scipy.special
    before MLflow, so that search stops early. The names it finds are those found when MLflow comes first (as in
    `mlflow models serve`), in a process of its own (the test workers import scipy.special early: tests/conftest.py)."""
    probe = ("import sys; from mlyard.serving.server import import_scoring_modules; import_scoring_modules(); "
             "first = list(sys.modules); import skops.io._trusted_types as trusted; "
             "print(first.index('scipy.special._special_ufuncs') < first.index('mlflow')); "
             "print(*trusted.SCIPY_UFUNC_TYPE_NAMES)")  # fmt: skip
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    before, names = found.stdout.splitlines()
    assert before == "True"
    assert names.split() == skops_names_mlflow_first
