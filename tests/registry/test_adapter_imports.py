"""The registry adapter depends on the standard library, mlflow, mlyard.errors and mlyard.names only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mlyard.registry

ALLOWED_MLYARD = {"mlyard.errors", "mlyard.names"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_adapter_imports_only_the_standard_library_mlflow_errors_and_names() -> None:
    package = Path(mlyard.registry.__file__).parent
    offenders = {}
    for path in sorted(package.glob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if module.startswith("mlyard.registry") or module in ALLOWED_MLYARD or top == "mlflow":
                continue
            if top == "mlyard" or top not in sys.stdlib_module_names:
                offenders.setdefault(path.name, []).append(module)
    assert offenders == {}
