"""The model registry of an environment: MLflow's registry behind mlyard's stage vocabulary.

`Registry(tracking_uri)` wraps an `MlflowClient` bound to one environment's store (never MLflow's global
tracking URI: several environments live in one process). A version is in Staging or Production when the
alias `staging` / `production` points at it; the legacy MLflow stages mirror the aliases so that both
`models:/NAME@production` and `models:/NAME/Production` load the Production version. Stage changes of a
model are serialised across processes by an fcntl lock file and recorded in its history.

This package is an adapter: it imports the standard library, mlflow, `mlyard.errors` and `mlyard.names`.
MLflow only where it is needed: `Registry` (in `adapter`) is loaded on first use, so `import mlyard.registry`,
the stores' URIs, locks and initialisation (`store`) and the stage vocabulary (`stages`) cost no MLflow import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlyard.registry.stages import ALIASES, STAGES, check_stage, check_version
from mlyard.registry.store import (
    ARTIFACTS_DIR,
    DB_FILE,
    check_tracking_uri,
    init_store,
    is_initialised,
    sqlite_path,
    sqlite_uri,
)

if TYPE_CHECKING:
    from mlyard.registry.adapter import Registry

__all__ = [
    "ALIASES",
    "ARTIFACTS_DIR",
    "DB_FILE",
    "STAGES",
    "Registry",
    "check_stage",
    "check_tracking_uri",
    "check_version",
    "init_store",
    "is_initialised",
    "sqlite_path",
    "sqlite_uri",
]


def __getattr__(name: str) -> Any:
    """`Registry` imports MLflow: loaded when first asked for (`from mlyard.registry import Registry`)."""
    if name == "Registry":
        from mlyard.registry.adapter import Registry

        return Registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
