"""Typed HTTP client of the mlyard API, shared by the CLI and the agent.

Errors come back as the same `UserError` subclasses the server raised (by HTTP status), with
the server's message, so the CLI prints them exactly like local errors.

The transport is the standard library's `http.client`, with one keep-alive connection per thread.
The API needs nothing more (JSON, byte bodies, one streamed text answer), and every CLI command
pays for its client's import: httpx and httpcore cost ~0.1 s of CPU per command on a small machine,
a third of the start-up budget of client commands (see benchmarks/cli_startup.py).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
import ssl  # already imported by http.client
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from mlyard import __version__
from mlyard.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MlyardError,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    PermissionDenied,
    ServerUnavailable,
    TooManyAttempts,
)

_BY_STATUS: dict[int, type[MlyardError]] = {
    400: InvalidInput,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}

# A kept-alive connection the server has closed in the meantime (uvicorn closes idle ones after 5 s)
# fails like this before any answer arrives: the request never reached the application, so it is sent
# again once on a fresh connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Response:
    """A complete answer: status, reason, headers and body."""

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client:
    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"the server URL {url!r} is not an http:// or https:// URL: set MLYARD_URL or "
                               "the url in your CLI config (`mlyard init` writes it)")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"User-Agent": f"mlyard/{__version__}", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the API's shapes ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send a JSON request; return the decoded JSON answer (None for an empty one)."""
        body = None if json is None else jsonlib.dumps(json).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self._send(method, path, params=params, body=body, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def put_bytes(self, path: str, data: bytes, *, content_type: str = "application/octet-stream") -> Any:
        """Upload a body of bytes (artifacts); returns the JSON answer."""
        return self._send("PUT", path, body=data, headers={"Content-Type": content_type}).json()

    def get_bytes(self, path: str) -> bytes:
        """Download a body of bytes (artifacts)."""
        return self._send("GET", path).content

    def text(self, path: str, **params: Any) -> str:
        """A plain-text answer (logs)."""
        return self._send("GET", path, params=params).text

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a streamed plain-text answer, as they arrive (no read timeout).

        Uses a connection of its own, closed when the stream ends or the caller stops iterating.
        """
        connection = self._connection(timeout=10.0)
        try:
            self._connect(connection)
            try:
                connection.request("GET", self._target(path, params), headers=self._headers)
                connection.sock.settimeout(None)  # a followed log may be quiet for a long time
                response = connection.getresponse()
                if response.status >= 400:
                    raise _error(Response(response.status, response.reason, response.headers, response.read()))
                while line := response.readline():
                    yield line.decode("utf-8", errors="replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(exc, connected=True) from None
        finally:
            connection.close()

    # -- transport -----------------------------------------------------------------------------
    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self._prefix + path + (f"?{urlencode(query, doseq=True)}" if query else "")

    def _connection(self, *, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> Response:
        target = self._target(path, params)
        all_headers = {**self._headers, **(headers or {})}
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._connection(timeout=self.timeout)
                self._local.connection = connection
                with self._lock:
                    self._open.add(connection)
            if connection.sock is None:
                try:
                    self._connect(connection)
                except ServerUnavailable:
                    self._drop(connection)
                    raise
                reused = False
            try:
                connection.request(method, target, body=body, headers=all_headers)
                raw = connection.getresponse()
                response = Response(raw.status, raw.reason, raw.headers, raw.read())
                if raw.will_close:
                    self._drop(connection)
                break
            except _STALE as exc:
                self._drop(connection)
                if reused and attempt == 1:
                    continue
                raise self._unavailable(exc, connected=True) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise self._unavailable(exc, connected=True) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _connect(self, connection: http.client.HTTPConnection) -> None:
        try:
            connection.connect()
        except OSError as exc:  # refused, unknown host, TLS failure, time-out
            connection.close()
            raise self._unavailable(exc, connected=False) from None

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            self._open.discard(connection)

    def _unavailable(self, exc: BaseException, *, connected: bool) -> ServerUnavailable:
        if isinstance(exc, TimeoutError | socket.timeout):
            return ServerUnavailable(f"the mlyard server at {self.url} did not answer in time")
        if isinstance(exc, ssl.SSLError):
            return ServerUnavailable(f"the TLS handshake with {self.url} failed: {exc}")
        if not connected or isinstance(exc, ConnectionRefusedError | socket.gaierror):
            return ServerUnavailable(
                f"cannot reach the mlyard server at {self.url}: start it with `mlyard server` "
                "(or point MLYARD_URL at a running one)"
            )
        return ServerUnavailable(f"lost the connection to the mlyard server at {self.url}: {exc}")


def _error(response: Response) -> MlyardError:
    try:
        body = response.json()
        message = body.get("error") or response.reason_phrase
        errors = body.get("errors") or []
    except (ValueError, AttributeError):
        message, errors = (response.text.strip() or response.reason_phrase), []
    if response.status_code == 401 and "mlyard tokens" not in message:
        message += " (check MLYARD_TOKEN or the token in your CLI config; `mlyard init` writes one)"
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "60")
        return TooManyAttempts(message, retry_after=int(retry_after) if retry_after.isdigit() else 60)
    cls = _BY_STATUS.get(response.status_code, OperationFailed)
    return cls(message, errors=[e for e in errors if e != message])
