"""Databricks' workspace/import has its own body limit (api/limits.py), refused in Databricks' error shape."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mlyard.api.limits import WORKSPACE_IMPORT_BYTES, BodyLimit, BodyLimits
from mlyard.settings import Settings

IMPORT = "/databricks/dev/api/2.0/workspace/import"


def limits(tmp_path: Path) -> BodyLimits:
    return BodyLimits.from_settings(Settings(home=tmp_path))


def test_imports_have_their_own_limit(tmp_path: Path) -> None:
    body = limits(tmp_path)
    assert body.for_request("POST", IMPORT).size == WORKSPACE_IMPORT_BYTES
    assert body.for_request("POST", "/databricks/dev/api/2.0/workspace/mkdirs") == body.api
    assert body.for_request("POST", "/api/v1/databricks/dev/api/2.0/workspace/import") == body.api


def test_a_declared_oversized_import_gets_databricks_error_shape(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": IMPORT,
             "headers": [(b"content-length", str(WORKSPACE_IMPORT_BYTES + 1).encode())]}  # fmt: skip
    asyncio.run(BodyLimit(app, limits(tmp_path))(scope, receive, send))
    assert not called and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "error_code": "MAX_NOTEBOOK_SIZE_EXCEEDED",
        "message": "request body too large: a Databricks workspace import may have at most 32 MiB (33554432 bytes)",
    }
