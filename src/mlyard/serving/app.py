"""The scoring server as a minimal ASGI application (no framework on the hot path).

Routes, as in MLflow's scoring server:
  POST /invocations   predictions in MLflow's scoring protocol (see `scoring.Scorer`)
  GET  /ping          200 with "\\n" once the model is loaded (MLflow's body)
  GET  /health        200 with a small JSON status
  GET  /version       JSON: MLflow version, model URI, registered name and version

Predictions run on the event loop thread: one process serves one model, and handing the work to a
thread pool only adds a thread switch and GIL contention to every request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from mlyard.serving.model import ServedModel, load_served_model
from mlyard.serving.scoring import JSON, Reply, Scorer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024 * 1024
_PING = Reply(200, JSON, b"\n")


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, JSON, json.dumps({"error_code": code, "message": message}).encode())


class ScoringApp:
    """ASGI app serving one loaded model."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        self.scorer = Scorer(served.pyfunc)
        self._version = Reply(200, JSON, json.dumps(served.describe()).encode())
        self._health = Reply(200, JSON, json.dumps({"status": "ok", "model_uri": served.ref.uri}).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await _send(send, await self._route(scope, receive))
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _route(self, scope: Scope, receive: Receive) -> Reply:
        path, method = scope["path"], scope["method"]
        if path == "/invocations":
            if method != "POST":
                return _error(405, "METHOD_NOT_ALLOWED", "/invocations accepts POST only")
            body = await _read_body(receive)
            if body is None:
                return _error(413, "BAD_REQUEST", f"request body larger than {MAX_BODY_BYTES} bytes")
            return self.scorer.invoke(body, _header(scope, b"content-type"))
        if method != "GET":
            return _error(405, "METHOD_NOT_ALLOWED", f"{path} accepts GET only")
        if path == "/ping":
            return _PING
        if path == "/health":
            return self._health
        if path == "/version":
            return self._version
        return _error(404, "ENDPOINT_NOT_FOUND", f"no route {path}: use /invocations, /ping, /health or /version")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes | None:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", reply.media_type.encode()), (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    model_uri: str, tracking_uri: str | None = None, *, artifacts_destination: Path | None = None
) -> ScoringApp:
    """Load `model_uri` once (resolving `models:/` URIs against `tracking_uri`) and return the ASGI app."""
    return ScoringApp(load_served_model(model_uri, tracking_uri, artifacts_destination=artifacts_destination))
