"""Models in the registry of each environment (MLflow), behind mlyard's stage vocabulary.

The registry adapter (mlyard.registry) is imported lazily: MLflow takes seconds to import, and a
server that never touches models should not pay for it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from mlyard.services import audit, environments
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

if TYPE_CHECKING:
    from mlyard.registry import Registry

_registries: dict[str, Registry] = {}
_lock = threading.Lock()


def registry(platform: Platform, env: str) -> Registry:
    """The registry of environment `env` (its store is initialised once, under a lock, on first use)."""
    tracking_uri = environments.get_environment(platform, env)["mlflow_tracking_uri"]
    with _lock:
        cached = _registries.get(tracking_uri)
        if cached is None:
            from mlyard.registry import Registry

            cached = _registries[tracking_uri] = Registry(tracking_uri)
        return cached


def list_models(platform: Platform, env: str) -> list[dict[str, Any]]:
    return [{**m, "environment": env} for m in registry(platform, env).list_models()]


def show_model(platform: Platform, env: str, name: str) -> dict[str, Any]:
    return {**registry(platform, env).show_model(name), "environment": env}


def stage(
    platform: Platform, principal: Principal, env: str, name: str, version: str, stage_name: str, *, reason: str = ""
) -> dict[str, Any]:
    principal.require("pipelines:run")
    principal.require_environment(env)
    entry = registry(platform, env).stage(name, version, stage_name, by=principal.username, reason=reason or None)
    audit.record_now(
        platform, "model.staged", actor=principal.username, target=f"{env}/{name}/{version}", stage=stage_name
    )
    return {**entry, "environment": env, "model": name}


def history(platform: Platform, env: str, name: str) -> list[dict[str, Any]]:
    return list(registry(platform, env).history(name))


def rollback(platform: Platform, principal: Principal, env: str, name: str, *, reason: str = "") -> dict[str, Any]:
    principal.require("pipelines:run")
    principal.require_environment(env)
    entry = registry(platform, env).rollback(name, by=principal.username, reason=reason or None)
    audit.record_now(platform, "model.rollback", actor=principal.username, target=f"{env}/{name}")
    return {**entry, "environment": env, "model": name}


def version_for(
    platform: Platform, env: str, name: str, *, version: str | None = None, stage: str | None = None
) -> dict[str, Any]:
    return {**registry(platform, env).version_for(name, version=version, stage=stage), "environment": env}


def tag_version(
    platform: Platform, principal: Principal, env: str, name: str, version: str, tags: dict[str, str]
) -> dict[str, Any]:
    principal.require("pipelines:run")
    principal.require_environment(env)
    return registry(platform, env).tag_version(name, version, tags)
