"""Security headers on every API answer (`/api/...`, `/health`), as ASGI middleware.

API answers are data, never pages: not to be sniffed into HTML, framed, cached or sent as a referrer.
The web UI sets its own, stricter page headers (web/pages.py); they are left as they are.
"""

from __future__ import annotations

from mlyard.api.limits import ASGIApp, Message, Receive, Scope, Send

API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/health"


class SecurityHeaders:
    """Adds `API_HEADERS` (those the route did not set itself) to the answers of API paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {key.lower() for key, _ in headers}
                headers.extend((key, value) for key, value in API_HEADERS if key not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
