"""The error hierarchy. Library code raises these; the CLI and the API turn them into output.

Every error a user can cause is a :class:`UserError` carrying the HTTP status the API answers
with and the exit code the CLI exits with. Messages say what is wrong, where, and what to do.

Exit codes (documented in docs/cli.md):
  0 success, 1 failure (also: server not reachable, invalid pipeline), 2 invalid input,
  3 not found, 4 conflict (already exists), 5 authentication or permission denied.
"""

from __future__ import annotations


class MlyardError(Exception):
    """Root of every error mlyard raises on purpose."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[str] = list(errors or [])

    def __str__(self) -> str:
        return self.message


class UserError(MlyardError):
    """An error caused by input: shown to the user without a traceback."""

    http_status = 400
    exit_code = 2


class InvalidInput(UserError, ValueError):
    """A value (name, parameter, option) breaks a rule; the message states the rule."""


class NotFound(UserError, LookupError):
    http_status = 404
    exit_code = 3


class Conflict(UserError):
    http_status = 409
    exit_code = 4


class AuthenticationError(UserError):
    """Missing, wrong, revoked or expired credentials."""

    http_status = 401
    exit_code = 5


class PermissionDenied(UserError):
    """Valid credentials whose scopes do not allow the operation."""

    http_status = 403
    exit_code = 5


class Unprocessable(UserError):
    """Well-formed input the platform cannot act on, such as a model version that does not start: 422."""

    http_status = 422


class PayloadTooLarge(UserError):
    """A request body (JSON, artifact, git push) is larger than the server accepts; the message names the limit."""

    http_status = 413


class TooManyAttempts(UserError):
    """Too many failed authentications from one client address: wait `retry_after` seconds."""

    http_status = 429
    exit_code = 5

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerUnavailable(MlyardError):
    """The CLI could not reach the mlyard server."""

    exit_code = 1


class OperationFailed(MlyardError):
    """An operation failed for a reason outside the user's input (git, disk, subprocess)."""

    exit_code = 1
