"""Request body limits, enforced before any route reads a body (ASGI middleware).

A body declared larger than its limit (Content-Length) is refused at once with 413, without reading it;
a streamed (chunked) body is counted as it arrives and refused as soon as it passes the limit, so a large
request never costs the server more memory than the limit. Which limit applies depends on the route:
git pushes and artifact uploads (streamed to disk) are allowed more than API requests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from mlyard.api.errors import error_body
from mlyard.errors import InvalidInput, PayloadTooLarge
from mlyard.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Agents report a job's log lines in batches of up to 200 lines, whose length the step decides.
AGENT_REPORT_BYTES = 16 * 1024**2
_ARTIFACT_UPLOAD = re.compile(r"^/api/v1/agent/jobs/[^/]+/artifacts/[^/]+$")
# Databricks' workspace/import carries a notebook or a zipped folder, base64 in JSON (or a multipart form).
WORKSPACE_IMPORT_BYTES = 32 * 1024**2
_WORKSPACE_IMPORT = re.compile(r"^/databricks/[^/]+/api/2\.0/workspace/import$")
_MLFLOW_ARTIFACT_UPLOAD = re.compile(r"^/mlflow/[^/]+/api/2\.0/mlflow-artifacts/artifacts/")  # /mlflow/<env> uploads


def describe(size: int) -> str:
    """1048576 -> '1 MiB' (limits are shown in the unit a person would set)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Limit:
    size: int
    what: str  # "an API request", "an artifact upload", "a git push"
    setting: str  # the settings.json key that changes it ("" when fixed)

    def error(self) -> PayloadTooLarge:
        how = f"; the server's administrator can change it (`{self.setting}` in settings.json)" if self.setting else ""
        return PayloadTooLarge(
            f"request body too large: {self.what} may have at most {describe(self.size)} ({self.size} bytes){how}"
        )


@dataclass(frozen=True)
class BodyLimits:
    """The limits of one server, from its settings."""

    api: Limit
    agent_reports: Limit
    artifacts: Limit
    git: Limit
    workspace_imports: Limit = Limit(WORKSPACE_IMPORT_BYTES, "a Databricks workspace import", "")

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        for key in ("max_request_bytes", "max_artifact_bytes", "max_push_bytes"):
            value = getattr(settings, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidInput(f"settings.json: {key} must be a positive number of bytes, not {value!r}")
        return cls(
            api=Limit(settings.max_request_bytes, "an API request", "max_request_bytes"),
            agent_reports=Limit(max(AGENT_REPORT_BYTES, settings.max_request_bytes), "an agent's report", ""),
            artifacts=Limit(settings.max_artifact_bytes, "an artifact upload", "max_artifact_bytes"),
            git=Limit(settings.max_push_bytes, "a git push", "max_push_bytes"),
        )

    def for_request(self, method: str, path: str) -> Limit:
        if path.startswith("/git/"):
            return self.git
        if method == "PUT" and (_ARTIFACT_UPLOAD.match(path) or _MLFLOW_ARTIFACT_UPLOAD.match(path)):
            return self.artifacts
        if path.startswith("/api/v1/agent/jobs/"):
            return self.agent_reports
        if method == "POST" and _WORKSPACE_IMPORT.match(path):
            return self.workspace_imports
        return self.api


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware applying `BodyLimits` to every HTTP request (see module doc).

    Past the limit, `receive` raises `PayloadTooLarge` (the API turns it into its 413 answer); for git,
    whose backend reads the body in a task of its own, it reports the client as gone instead, and the
    answer the git backend would give is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit.size:
            await _send_413(send, limit)
            return
        received = 0
        exceeded = started = replaced = False
        raise_past_limit = not scope["path"].startswith("/git/")

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.size:
                    exceeded = True
                    if raise_past_limit:
                        raise limit.error()
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:  # the app's own answer to a body that was cut short: already answered with 413
                return
            if message["type"] == "http.response.start":
                if exceeded and not started:
                    started = replaced = True
                    await _send_413(send, limit)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            if not started:
                await _send_413(send, limit)


async def _send_413(send: Send, limit: Limit) -> None:
    error = limit.error()
    document = error_body(413, error.message)
    if limit.what.startswith("a Databricks"):  # the error shape Databricks' clients read
        document = {"error_code": "MAX_NOTEBOOK_SIZE_EXCEEDED", "message": error.message}
    body = json.dumps(document, separators=(",", ":")).encode()
    # No `Connection: close`: the HTTP server then reads the rest of the body and drops it (never keeping
    # it), so a client that sends its whole body before reading the answer (http.client, our own client)
    # gets this 413 instead of a connection reset.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
