"""Models in the registry of each environment (MLflow), behind mlyard's stage vocabulary.

In the server, the registry of an environment with the embedded store is reached through that environment's
MLflow server (the process that serves `/mlflow/<env>`, over its Unix socket, with the light REST client
mlyard.registry.rest): the server never imports MLflow, which takes seconds of CPU. Elsewhere (no server, a
remote MLflow), `MlflowClient` is used in-process, imported on first use.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlyard.errors import InvalidInput
from mlyard.services import audit, environments
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

if TYPE_CHECKING:
    from mlyard.registry import Registry

REST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # a stage change waits for the model's lock (120 s at most)
_registries: dict[tuple[str, str], Registry] = {}
_lock = threading.Lock()


def registry(platform: Platform, env: str) -> Registry:
    """The registry of environment `env`: through its MLflow server when the server runs one (started if needed),
    else MLflow in-process (the store is then initialised once, under a lock, on first use)."""
    tracking_uri = environments.get_environment(platform, env)["mlflow_tracking_uri"]
    socket = platform.mlflow_socket(env, tracking_uri) if platform.mlflow_socket is not None else None
    key = (tracking_uri, str(socket or ""))
    with _lock:
        cached = _registries.get(key)
        if cached is None:
            cached = _registries[key] = _open(env, tracking_uri, socket)
        return cached


def _open(env: str, tracking_uri: str, socket: Path | None) -> Registry:
    from mlyard.registry.adapter import Registry

    if socket is None:
        return Registry(tracking_uri)
    from mlyard.registry.rest import RestClient

    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://localhost",
                        timeout=REST_TIMEOUT)  # fmt: skip
    return Registry(tracking_uri, client=RestClient(http, f"the MLflow server of environment {env!r}"))


def list_models(platform: Platform, env: str) -> list[dict[str, Any]]:
    """The environment's models; none, without starting its MLflow server, while its embedded store does not exist
    yet (nothing was ever logged or registered there): MLflow would create the store only to answer an empty list."""
    if _never_used(environments.get_environment(platform, env)["mlflow_tracking_uri"]):
        return []
    return [{**m, "environment": env} for m in registry(platform, env).list_models()]


def _never_used(tracking_uri: str) -> bool:
    """An embedded store whose database file does not exist yet, or is empty (as model_views' _NO_STORE)."""
    from mlyard.registry.store import is_remote, never_used, sqlite_path

    if is_remote(tracking_uri):
        return False
    try:
        path = sqlite_path(tracking_uri)
    except InvalidInput:  # the registry's own answer (a clear error) follows
        return False
    return never_used(path)


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
