"""An ASGI app in place of MLflow's server app, for the tests of `tracking_server.prepare_app`: it records whether
Python's cyclic garbage collector was on while it was imported, whether an optional package was found (a probe, as
pandas' for pyarrow), and the paths it was asked."""

from __future__ import annotations

import gc
from typing import Any

COLLECTING_AT_IMPORT = gc.isenabled()
try:
    import mlyard_test_optional.probed  # noqa: F401 (a package the tests make, or none)

    OPTIONAL_FOUND = True
except ImportError:
    OPTIONAL_FOUND = False
ASKED: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    ASKED.append(scope["path"])
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
