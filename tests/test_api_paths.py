"""Only the API (src/mlyard/api/) and the client (src/mlyard/client.py) spell the API's paths.

Everything else (CLI, agent, creator, quickstart, app) calls the client's typed resources, so a path
changes in one place and a caller cannot get one wrong.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mlyard"
ALLOWED = ("api/", "client.py")


def path_literals(source: str) -> list[int]:
    """Lines of string literals and f-strings that begin with /api/v1 (not full URLs: f"{base}/api/v1/...")."""
    tree = ast.parse(source)
    inner = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values[1:]}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("/api/v1")
        and id(node) not in inner
    ]


def test_the_scan_finds_plain_and_formatted_paths() -> None:
    source = 'a = "/api/v1/runs"\nb = f"/api/v1/runs/{a}"\nc = f"{a}/api/v1"\nd = "see /api/v1"\n'
    assert path_literals(source) == [1, 2]


def test_no_api_path_literals_outside_the_api_and_the_client() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(ALLOWED):
            continue
        found += [f"src/mlyard/{relative}:{line}" for line in path_literals(path.read_text())]
    assert not found, "call mlyard.client's resources instead of spelling API paths: " + ", ".join(found)
