"""`Registry`: one environment's model registry, an MLflow client behind mlyard's stage vocabulary.

The client is `MlflowClient` on the store's URI (imported when such a `Registry` is made: seconds of CPU), or
the light REST client of the environment's MLflow server (`rest.RestClient`, no MLflow import: the server's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlyard.errors import InvalidInput, NotFound
from mlyard.registry import promotion, versions
from mlyard.registry.rest import ApiError, Translating
from mlyard.registry.stages import ALIASES, check_stage, check_version
from mlyard.registry.store import (
    check_tracking_uri,
    default_lock_dir,
    file_lock,
    init_store,
    is_initialised,
    is_remote,
    lock_file,
    sqlite_path,
)


class Registry:
    """One environment's model registry. Methods return plain dicts (JSON-ready) and raise mlyard errors."""

    def __init__(self, tracking_uri: str, *, lock_dir: Path | None = None, client: Any = None) -> None:
        """The registry of the store at `tracking_uri`, used through `client` (a rest.RestClient of the store's
        MLflow server) or, by default, through `MlflowClient` (initialising an embedded store first)."""
        self.tracking_uri = check_tracking_uri(tracking_uri)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir(tracking_uri)
        if client is None:
            if not is_remote(tracking_uri) and not is_initialised(sqlite_path(tracking_uri)):
                init_store(tracking_uri)
            client = mlflow_client(tracking_uri)
        self.client = client

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            raise versions.translate(exc, self.tracking_uri) from exc

    @contextlib.contextmanager
    def model_lock(self, name: str) -> Iterator[None]:
        """Hold the lock that serialises stage changes of model `name` across processes."""
        with file_lock(lock_file(self.lock_dir, self.tracking_uri, name), what=f"model {name!r}"):
            yield

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model: name, latest_version, version_count, production, staging, updated."""
        with self._errors():
            return versions.list_models(self.client)

    def show_model(self, name: str) -> dict[str, Any]:
        """A model with its aliases, tags, history and versions (stage, aliases, tags, run metrics, source)."""
        with self._errors():
            history = promotion.read_history(versions.get_model(self.client, name))
            return versions.show_model(self.client, name, history)

    def history(self, name: str) -> list[dict[str, Any]]:
        """The stage changes of `name`, oldest first: version, from, to, by, at, action, reason, archived."""
        with self._errors():
            return promotion.read_history(versions.get_model(self.client, name))

    def stage(
        self, name: str, version: int | str, stage: str, *, by: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Put a version in Staging, Production (the previous one goes to Archived), Archived or None."""
        canonical = check_stage(stage)
        number = check_version(version)
        with self._errors(), self.model_lock(name):
            return promotion.transition(self.client, name, number, canonical, by=by, reason=reason)

    def promote(
        self, name: str, version: int | str, *, by: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Put a version in Production, archiving the previous Production version; return the history entry."""
        number = check_version(version)
        with self._errors(), self.model_lock(name):
            return promotion.transition(self.client, name, number, "Production", by=by, reason=reason, action="promote")

    def rollback(self, name: str, *, by: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Production goes back to the version that was in Production before the current one."""
        with self._errors(), self.model_lock(name):
            return promotion.rollback(self.client, name, by=by, reason=reason)

    def version_for(
        self, name: str, *, version: int | str | None = None, stage: str | None = None, alias: str | None = None
    ) -> dict[str, Any]:
        """Resolve a version number, the version in a stage (default Production) or the one an alias names."""
        if sum(choice is not None for choice in (version, stage, alias)) > 1:
            raise InvalidInput("give one of a model version, a stage or an alias, not several")
        number = check_version(version) if version is not None else None
        label = f"with alias {alias!r}"
        if number is None and alias is None:
            canonical = check_stage(stage or "Production")
            if canonical not in ALIASES:
                raise InvalidInput(
                    f"stage {canonical!r} can hold many versions: give Staging or Production, or a version number"
                )
            alias, label = ALIASES[canonical], f"in {canonical}"
        with self._errors():
            rm = versions.get_model(self.client, name)
            aliases = versions.model_aliases(rm)
            if number is None:
                number = aliases.get(str(alias))
                if number is None:
                    raise NotFound(f"model {rm.name!r} has no version {label}")
            found = versions.get_version(self.client, rm.name, number, versions.all_versions(self.client, rm.name))
            return versions.version_dict(self.client, found, aliases)

    def tag_version(self, name: str, version: int | str, tags: dict[str, Any]) -> dict[str, Any]:
        """Set tags (values turned into strings) on a version; return the version."""
        number = check_version(version)
        with self._errors():
            rm = versions.get_model(self.client, name)
            found = versions.get_version(self.client, rm.name, number, versions.all_versions(self.client, rm.name))
            for key, value in tags.items():
                self.client.set_model_version_tag(rm.name, str(number), str(key), "" if value is None else str(value))
            found = self.client.get_model_version(rm.name, str(number))
            return versions.version_dict(self.client, found, versions.model_aliases(rm))

    def run_artifact_uri(self, run_id: str) -> str:
        """Where run `run_id` keeps its artifacts (`mlflow-artifacts:/...` for a run logged through a tracking
        server that proxies them); NotFound for an unknown run."""
        with self._errors():
            try:
                info = self.client.get_run(run_id).info
            except ApiError as exc:
                if exc.error_code == versions.NOT_FOUND:
                    raise NotFound(f"run {run_id!r} not found in the registry's tracking store") from None
                raise
            return str(getattr(info, "artifact_uri", "") or "")


def mlflow_client(tracking_uri: str) -> Any:
    """`MlflowClient` on `tracking_uri` (tracking and registry), raising `ApiError`s."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    return Translating(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), MlflowException)
