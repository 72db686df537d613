"""One error body for the whole API: {"ok": false, "error": "...", "errors": [...], "status": N}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlyard.errors import AuthenticationError, MlyardError, TooManyAttempts

log = logging.getLogger("mlyard.api")
CHALLENGE = 'Bearer realm="mlyard"'


def error_body(status: int, message: str, errors: list[str] | None = None) -> dict[str, Any]:
    return {"ok": False, "error": message, "errors": list(errors or [message]), "status": status}


def error_response(
    status: int, message: str, errors: list[str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, errors), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(MlyardError)
    async def _mlyard(_request: Request, exc: MlyardError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("server error: %s", exc.message)
        headers = {"WWW-Authenticate": CHALLENGE} if isinstance(exc, AuthenticationError) else None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.http_status, exc.message, exc.errors or None, headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        """A write that lost a race with another request (services turn the usual ones into their own
        Conflict message; this answers any other the same way, never with a 500)."""
        log.info("integrity conflict: %s", exc.orig)
        return error_response(409, conflict_message(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        return error_response(422, "invalid request: " + "; ".join(problems), problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such API route; see /docs for the API"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def conflict_message(exc: IntegrityError) -> str:
    """What to tell the client when a unique (or foreign key) rule of the database refused a write."""
    detail = str(exc.orig).splitlines()[0] if exc.orig is not None else "constraint failed"
    return (
        f"the change conflicts with data written at the same time by another request ({detail}): "
        "reload and try again, or choose another name"
    )
