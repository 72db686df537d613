"""What a package's modules import, read from their source (for the dependency-rule tests of adapters)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED_MLYARD = frozenset({"mlyard.errors", "mlyard.imports", "mlyard.names", "mlyard.forkserver",
                            "mlyard.asgi_server"})  # stdlib only (asgi_server: and uvicorn)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def foreign_imports(package: str, *, third_party: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Per module of `package`, what it imports beyond itself, the standard library, `third_party`
    and mlyard's leaves (errors, imports, names)."""
    folder = Path(sys.modules[package].__file__ or "").parent
    offenders: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for module in sorted(imported_modules(path)):
            top = module.split(".")[0]
            if module.startswith(package) or module in ALLOWED_MLYARD or top in third_party:
                continue
            if top == "mlyard" or top not in sys.stdlib_module_names:
                offenders.setdefault(path.name, []).append(module)
    return offenders
