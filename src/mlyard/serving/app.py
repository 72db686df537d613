"""The scoring server as a minimal ASGI application (no framework on the hot path).

Routes, as in MLflow's scoring server:
  POST /invocations   predictions in MLflow's scoring protocol (see `scoring.Scorer`)
  GET  /ping          200 with "\\n" once the model is loaded (MLflow's body)
  GET  /health        200 with a small JSON status (and the inference log's counters when it logs)
  GET  /version       JSON: MLflow version, model URI, registered name and version

Every `/invocations` answer carries an `X-Request-Id` header: the client's own (1-64 characters of
[A-Za-z0-9._:-]) or a new one. With an inference log (`mlyard.monitoring.table.InferenceLogger`), the request,
its answer, its latency and that id are handed to the logger's queue after the answer is computed; the logger
writes them from its own thread (docs/monitoring.md).

Predictions run on the event loop thread: one process serves one model, and handing the work to a
thread pool only adds a thread switch and GIL contention to every request.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlyard.serving.model import ServedModel, load_served_model
from mlyard.serving.scoring import JSON, Reply, Scorer

if TYPE_CHECKING:
    from mlyard.monitoring.table import InferenceLogger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024 * 1024
_PING = Reply(200, JSON, b"\n")
_REQUEST_ID = b"x-request-id"
_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
MAX_REQUEST_ID = 64


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, JSON, json.dumps({"error_code": code, "message": message}).encode())


class ScoringApp:
    """ASGI app serving one loaded model."""

    def __init__(self, served: ServedModel, logger: InferenceLogger | None = None) -> None:
        self.served = served
        self.logger = logger
        self.scorer = Scorer(served.pyfunc)
        self._version = Reply(200, JSON, json.dumps(served.describe()).encode())
        self._health = Reply(200, JSON, json.dumps({"status": "ok", "model_uri": served.ref.uri}).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] == "/invocations" and scope["method"] == "POST":
                request_id = _request_id(scope)
                await _send(send, await self._invoke(scope, receive, request_id), request_id)
            else:
                await _send(send, await self._route(scope, receive))
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _invoke(self, scope: Scope, receive: Receive, request_id: bytes) -> Reply:
        started = time.perf_counter()
        body = await _read_body(receive)
        if body is None:
            return _error(413, "BAD_REQUEST", f"request body larger than {MAX_BODY_BYTES} bytes")
        content_type = _header(scope, b"content-type")
        reply = self.scorer.invoke(body, content_type)
        if self.logger is not None:
            latency = (time.perf_counter() - started) * 1000.0
            self.logger.offer(request_id.decode("ascii"), time.time(), latency, reply.status, content_type, body,
                              reply.body)  # fmt: skip
        return reply

    async def _route(self, scope: Scope, receive: Receive) -> Reply:
        path, method = scope["path"], scope["method"]
        if path == "/invocations":
            return _error(405, "METHOD_NOT_ALLOWED", "/invocations accepts POST only")
        if method != "GET":
            return _error(405, "METHOD_NOT_ALLOWED", f"{path} accepts GET only")
        if path == "/ping":
            return _PING
        if path == "/health":
            return self._health if self.logger is None else self._health_with_log()
        if path == "/version":
            return self._version
        return _error(404, "ENDPOINT_NOT_FOUND", f"no route {path}: use /invocations, /ping, /health or /version")

    def _health_with_log(self) -> Reply:
        from dataclasses import asdict

        assert self.logger is not None
        doc = {"status": "ok", "model_uri": self.served.ref.uri, "inference_log": asdict(self.logger.counters())}
        return Reply(200, JSON, json.dumps(doc).encode())


def _request_id(scope: Scope) -> bytes:
    """The client's X-Request-Id when it is 1-64 safe characters, else a new random one."""
    for key, value in scope["headers"]:
        if key == _REQUEST_ID:
            if 0 < len(value) <= MAX_REQUEST_ID and _ID_CHARS.issuperset(value):
                return bytes(value)
            break
    return uuid.uuid4().hex.encode()


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


async def _send(send: Send, reply: Reply, request_id: bytes | None = None) -> None:
    headers = [(b"content-type", reply.media_type.encode()), (b"content-length", str(len(reply.body)).encode())]
    if request_id is not None:
        headers.append((_REQUEST_ID, request_id))
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
    model_uri: str, tracking_uri: str | None = None, *, artifacts_destination: Path | None = None,
    inference_log: str | None = None, sample_rate: float = 0.1, full_below: int = 50,
) -> ScoringApp:  # fmt: skip
    """Load `model_uri` once (resolving `models:/` URIs against `tracking_uri`) and return the ASGI app; with
    `inference_log` (a folder), requests are logged there (mlyard.monitoring.table)."""
    served = load_served_model(model_uri, tracking_uri, artifacts_destination=artifacts_destination)
    logger = None
    if inference_log:
        from mlyard.monitoring.table import InferenceLogger

        logger = InferenceLogger(Path(inference_log), served.ref.version or "", sample_rate=sample_rate,
                                 full_below=full_below)  # fmt: skip
    return ScoringApp(served, logger)
