"""docs/databricks.md lists every endpoint the Databricks API serves and every error code it answers with."""

from __future__ import annotations

from fastapi.routing import APIRoute

from mlyard.api.routes import databricks as routes
from tests.conftest import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "databricks.md").read_text()


def test_every_endpoint_is_documented() -> None:
    paths = [r.path for r in routes.router.routes if isinstance(r, APIRoute)]
    assert len(paths) >= 12
    for path in paths:
        tail = path.removeprefix("/{env}").replace("/api/{version}/", "/api/2.1/")
        if tail.startswith("/.well-known"):
            assert tail in DOC
            continue
        assert f"{tail}" in DOC, f"docs/databricks.md does not document {path}"


def test_every_error_code_is_documented() -> None:
    codes = {code for _kind, _status, code in routes._CODES} | {"ENDPOINT_NOT_FOUND"}
    for code in codes:
        assert f"| `{code}` |" in DOC, f"docs/databricks.md does not document the error code {code}"
