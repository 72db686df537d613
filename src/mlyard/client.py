"""Typed HTTP client of the mlyard API, shared by the CLI and the agent.

Errors come back as the same `UserError` subclasses the server raised (by HTTP status), with
the server's message, so the CLI prints them exactly like local errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from mlyard.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MlyardError,
    NotFound,
    OperationFailed,
    PermissionDenied,
    ServerUnavailable,
)

# httpx imports its own command line (httpx._main: pygments, rich syntax) at import time; the client
# never uses it, and skipping it saves a third of the CLI's start-up. httpx handles its absence.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402

_BY_STATUS: dict[int, type[MlyardError]] = {
    400: InvalidInput,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
}


class Client:
    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Plain-HTTP URLs (the loopback default) need no TLS context: building one loads the CA bundle,
        # a tenth of a second of start-up. HTTPS URLs are verified as usual.
        verify = not self.url.startswith("http://")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send a JSON request; return the decoded JSON answer (None for an empty one)."""
        response = self._send(method, path, json=json, params=params)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def put_bytes(self, path: str, data: bytes, *, content_type: str = "application/octet-stream") -> Any:
        """Upload a body of bytes (artifacts); returns the JSON answer."""
        return self._send("PUT", path, content=data, headers={"Content-Type": content_type}).json()

    def get_bytes(self, path: str) -> bytes:
        """Download a body of bytes (artifacts)."""
        return self._send("GET", path).content

    def text(self, path: str, **params: Any) -> str:
        """A plain-text answer (logs)."""
        return self._send("GET", path, params={k: v for k, v in params.items() if v is not None} or None).text

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a streamed plain-text answer, as they arrive (no read timeout)."""
        try:
            with self._http.stream("GET", path, params=params, timeout=httpx.Timeout(10.0, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"lost the connection to the mlyard server at {self.url}: {exc}") from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ServerUnavailable(
                f"cannot reach the mlyard server at {self.url}: start it with `mlyard server` "
                "(or point MLYARD_URL at a running one)"
            ) from None
        except httpx.TimeoutException:
            raise ServerUnavailable(f"the mlyard server at {self.url} did not answer in time") from None
        if response.status_code >= 400:
            raise _error(response)
        return response


def _error(response: httpx.Response) -> MlyardError:
    try:
        body = response.json()
        message = body.get("error") or response.reason_phrase
        errors = body.get("errors") or []
    except ValueError:
        message, errors = (response.text.strip() or response.reason_phrase), []
    if response.status_code == 401 and "mlyard tokens" not in message:
        message += " (check MLYARD_TOKEN or the token in your CLI config; `mlyard init` writes one)"
    cls = _BY_STATUS.get(response.status_code, OperationFailed)
    return cls(message, errors=[e for e in errors if e != message])
