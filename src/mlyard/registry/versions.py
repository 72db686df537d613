"""Reading the registry: registered models and their versions as plain dicts, with the stage each is in.

A version's stage comes from the aliases (`production`, `staging`), the source of truth; the legacy MLflow
stage only says whether a version outside both aliases is Archived. Errors name the model and version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.registry.rest import ApiError
from mlyard.registry.stages import HISTORY_TAG

# The client is `MlflowClient` (wrapped by rest.Translating: its errors are ApiErrors) or rest.RestClient, and
# the entities MLflow's or rest's: both have the attributes read here.
MlflowClient = Any
ModelVersion = Any
RegisteredModel = Any

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_PAGE = 1000


def iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def translate(exc: ApiError, tracking_uri: str) -> OperationFailed:
    return OperationFailed(f"the MLflow registry at {tracking_uri} failed: {exc.message}")


def get_model(client: MlflowClient, name: str) -> RegisteredModel:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"invalid model name {name!r}: give the name of a registered model")
    try:
        return client.get_registered_model(name)
    except ApiError as exc:
        if exc.error_code == NOT_FOUND:
            raise NotFound(f"model {name!r} not found in the registry") from None
        raise


def _name_filter(name: str) -> str:
    quote = '"' if "'" in name else "'"
    return f"name = {quote}{name}{quote}"


def all_versions(client: MlflowClient, name: str | None = None) -> list[ModelVersion]:
    """Every version of `name` (or of every model), in increasing version order."""
    found: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(
            _name_filter(name) if name is not None else None, max_results=_PAGE, page_token=token
        )
        found.extend(page)
        token = page.token
        if not token:
            break
    return sorted(found, key=lambda mv: (mv.name, int(mv.version)))


def get_version(client: MlflowClient, name: str, version: int, versions: list[ModelVersion]) -> ModelVersion:
    for mv in versions:
        if int(mv.version) == version:
            return mv
    known = ", ".join(str(mv.version) for mv in versions) or "none"
    raise NotFound(f"model {name!r} has no version {version} (versions: {known})")


def model_aliases(rm: RegisteredModel) -> dict[str, int]:
    return {alias: int(version) for alias, version in (rm.aliases or {}).items()}


def stage_of(version: int, aliases: dict[str, int], legacy_stage: str | None) -> str:
    """The stage of a version: Production/Staging from the aliases; else Archived or None."""
    for stage, alias in (("Production", "production"), ("Staging", "staging")):
        if aliases.get(alias) == version:
            return stage
    return "Archived" if legacy_stage == "Archived" else "None"


def run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.metrics)
    except ApiError:
        return {}


def version_dict(
    client: MlflowClient, mv: ModelVersion, aliases: dict[str, int], *, metrics: bool = True
) -> dict[str, Any]:
    number = int(mv.version)
    return {
        "name": mv.name,
        "version": number,
        "stage": stage_of(number, aliases, mv.current_stage),
        "legacy_stage": mv.current_stage,
        "aliases": sorted(alias for alias, target in aliases.items() if target == number),
        "tags": dict(mv.tags or {}),
        "metrics": run_metrics(client, mv.run_id) if metrics else {},
        "run_id": mv.run_id,
        "source": mv.source,
        "status": mv.status,
        "description": mv.description or "",
        "created": iso(mv.creation_timestamp),
        "updated": iso(mv.last_updated_timestamp),
        "uri": f"models:/{mv.name}/{number}",
    }


def summary(rm: RegisteredModel, versions: list[ModelVersion]) -> dict[str, Any]:
    aliases = model_aliases(rm)
    numbers = [int(mv.version) for mv in versions]
    return {
        "name": rm.name,
        "latest_version": max(numbers) if numbers else None,
        "version_count": len(numbers),
        "production": aliases.get("production"),
        "staging": aliases.get("staging"),
        "updated": iso(rm.last_updated_timestamp),
    }


def list_models(client: MlflowClient) -> list[dict[str, Any]]:
    models: list[RegisteredModel] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=_PAGE, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            break
    by_name: dict[str, list[ModelVersion]] = {}
    for mv in all_versions(client):
        by_name.setdefault(mv.name, []).append(mv)
    return [summary(rm, by_name.get(rm.name, [])) for rm in sorted(models, key=lambda rm: rm.name)]


def show_model(client: MlflowClient, name: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    rm = get_model(client, name)
    versions = all_versions(client, rm.name)
    aliases = model_aliases(rm)
    return {
        **summary(rm, versions),
        "description": rm.description or "",
        "created": iso(rm.creation_timestamp),
        "aliases": aliases,
        "tags": {key: value for key, value in (rm.tags or {}).items() if key != HISTORY_TAG},
        "versions": [version_dict(client, mv, aliases) for mv in versions],
        "history": history,
    }
