"""Typed HTTP client of the mlyard API, shared by the CLI and the agent.

Errors come back as the same `UserError` subclasses the server raised (by HTTP status), with
the server's message, so the CLI prints them exactly like local errors.
"""

from __future__ import annotations

import sys
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
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.ConnectError:
            raise ServerUnavailable(
                f"cannot reach the mlyard server at {self.url}: start it with `mlyard server` "
                "(or point MLYARD_URL at a running one)"
            ) from None
        except httpx.TimeoutException:
            raise ServerUnavailable(f"the mlyard server at {self.url} did not answer in time") from None
        if response.status_code >= 400:
            raise _error(response)
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
