"""The plugin's one error: an MlflowException (what MLflow's deployments API promises its callers) that the
`mlflow` CLI prints as one `Error: ...` line with exit code 1, without a traceback (a click exception)."""

from __future__ import annotations

import click
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
    UNAUTHENTICATED,
)

from mlyard.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MlyardError,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
)

_CODES: tuple[tuple[type[MlyardError], int], ...] = (
    (NotFound, RESOURCE_DOES_NOT_EXIST),
    (InvalidInput, INVALID_PARAMETER_VALUE),
    (AuthenticationError, UNAUTHENTICATED),
    (PermissionDenied, PERMISSION_DENIED),
    (Conflict, RESOURCE_ALREADY_EXISTS),
    (ServerUnavailable, TEMPORARILY_UNAVAILABLE),
)


class TargetError(MlflowException, click.ClickException):  # type: ignore[misc]  # both set `message`
    """A failure of the `mlyard` deployments target, with MLflow's error code."""

    def __init__(self, message: str, error_code: int = INTERNAL_ERROR) -> None:
        MlflowException.__init__(self, message, error_code=error_code)

    def format_message(self) -> str:
        return str(self.message)


def invalid(message: str) -> TargetError:
    return TargetError(message, INVALID_PARAMETER_VALUE)


def not_found(message: str) -> TargetError:
    return TargetError(message, RESOURCE_DOES_NOT_EXIST)


def translate(exc: MlyardError, where: str) -> TargetError:
    """An error of mlyard's client (the server's message, by HTTP status) as a TargetError saying where."""
    code = next((code for cls, code in _CODES if isinstance(exc, cls)), INTERNAL_ERROR)
    details = "".join(f"\n  {line}" for line in exc.errors)
    return TargetError(f"{where}: {exc}{details}", code)
