"""Resolve a model URI against the registry once and load the pyfunc model it names.

`models:/NAME/VERSION`, `models:/NAME@ALIAS` and `models:/NAME/STAGE` are resolved to one concrete
version first, then that version is loaded, so what `/version` reports is exactly what is served
even if the alias or stage moves while the model loads. Any other URI (`runs:/...`, a path) is
loaded as it is.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlyard.errors import InvalidInput, NotFound, OperationFailed

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<ref>[^/@]+)|@(?P<alias>[^/@]+))/?$")
_STAGES = {"production": "Production", "staging": "Staging", "archived": "Archived", "none": "None"}
# Set by MLflow's own scoring server; some flavors read it.
_SERVING_ENV_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"


class ModelNotFound(NotFound):
    """The registry has no such model, version, alias or stage."""


class ModelLoadFailed(OperationFailed):
    """The model exists but MLflow could not load it."""


@dataclass(frozen=True)
class ModelRef:
    """What a model URI resolved to: the URI asked for and the concrete one that is loaded."""

    uri: str
    load_uri: str
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ServedModel:
    """A loaded pyfunc model and where it came from."""

    ref: ModelRef
    pyfunc: Any
    mlflow_version: str
    tracking_uri: str | None

    def describe(self) -> dict[str, Any]:
        """The body of `GET /version`."""
        return {
            "mlflow_version": self.mlflow_version,
            "model_uri": self.ref.uri,
            "model_name": self.ref.name,
            "model_version": self.ref.version,
            "loaded_uri": self.ref.load_uri,
            "flavor": getattr(self.pyfunc, "loader_module", None),
        }


def configure_tracking(tracking_uri: str | None) -> str | None:
    """Point this process's MLflow tracking and registry at `tracking_uri` (else `MLFLOW_TRACKING_URI`)."""
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return uri


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None] | None:
    """`(name, version-or-stage, alias)` of a `models:/` URI; None for any other URI."""
    if not model_uri.startswith("models:/"):
        return None
    match = _MODELS_URI.match(model_uri)
    if match is None:
        raise InvalidInput(
            f"invalid model URI {model_uri!r}: expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/STAGE"
        )
    return match["name"], match["ref"], match["alias"]


def resolve_model_uri(model_uri: str, client: Any) -> ModelRef:
    """Resolve a `models:/` URI to one version with an `MlflowClient`; other URIs pass through."""
    parsed = parse_model_uri(model_uri)
    if parsed is None:
        return ModelRef(uri=model_uri, load_uri=model_uri)
    name, ref, alias = parsed
    version = _lookup_version(client, name, ref, alias)
    return ModelRef(uri=model_uri, load_uri=f"models:/{name}/{version}", name=name, version=version)


def _lookup_version(client: Any, name: str, ref: str | None, alias: str | None) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        raise ModelNotFound(f"registered model {name!r} not found in the registry") from exc
    try:
        if alias is not None:
            return str(client.get_model_version_by_alias(name, alias).version)
        if ref is not None and ref.isdigit():
            return str(client.get_model_version(name, ref).version)
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias is not None else f"version {ref}"
        raise ModelNotFound(f"registered model {name!r} has no {what}") from exc
    stage = _STAGES.get(str(ref).lower())
    if stage is None:
        raise InvalidInput(
            f"invalid model reference {ref!r} for {name!r}: use a version number, @alias, "
            "or one of the stages Production, Staging, Archived, None"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow; users never see it
        latest = client.get_latest_versions(name, stages=[stage])
    if not latest:
        raise ModelNotFound(f"registered model {name!r} has no version in stage {stage!r}")
    return str(max(latest, key=lambda mv: int(mv.version)).version)


def check_model_uri(model_uri: str, tracking_uri: str | None) -> None:
    """The errors of `model_uri` that need no MLflow import (which takes seconds)."""
    if parse_model_uri(model_uri) is not None and not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        # MLflow would fall back to a new ./mlflow.db in the working directory
        raise InvalidInput(f"{model_uri} needs a registry: pass --tracking-uri or set MLFLOW_TRACKING_URI")


def load_served_model(
    model_uri: str, tracking_uri: str | None = None, *, artifacts_destination: Path | None = None
) -> ServedModel:
    """Resolve `model_uri` once and load it with `mlflow.pyfunc.load_model` (as MLflow's server does).

    A version whose artifacts were logged through the registry's MLflow server (`mlflow-artifacts:` URIs,
    which only an http(s) tracking URI resolves) is loaded from `artifacts_destination`, the folder where
    that server keeps them."""
    check_model_uri(model_uri, tracking_uri)
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.artifact_utils import _download_artifact_from_uri

    uri = configure_tracking(tracking_uri)
    os.environ[_SERVING_ENV_FLAG] = "true"
    client = MlflowClient()
    ref = resolve_model_uri(model_uri, client)
    try:
        load_uri = local_artifacts(client, ref, artifacts_destination)
        local = _download_artifact_from_uri(load_uri)  # a local store's folder is used in place
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # MLflow's own requirement check maps every installed distribution to its modules (a second or
            # more per start); `requirement_mismatches` below reads only the model's few requirements.
            pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True, **_serving_model_config())
    except MlflowException as exc:
        raise ModelLoadFailed(f"could not load model {model_uri!r}: {exc.message}") from exc
    except OSError as exc:
        raise ModelLoadFailed(f"could not load model {model_uri!r}: {exc}") from exc
    for mismatch in requirement_mismatches(Path(local) / "requirements.txt"):
        print(f"warning: the model needs {mismatch}", file=sys.stderr, flush=True)
    return ServedModel(ref=ref, pyfunc=pyfunc, mlflow_version=mlflow.__version__, tracking_uri=uri)


def _serving_model_config() -> dict[str, Any]:
    """`model_config` from MLflow's SERVING_MODEL_CONFIG variable, as its scoring server reads it."""
    from mlflow.pyfunc.scoring_server import SERVING_MODEL_CONFIG

    text = os.environ.get(SERVING_MODEL_CONFIG)
    return {"model_config": json.loads(text)} if text else {}


MAX_REQUIREMENTS = 500


def requirement_mismatches(requirements_txt: Path) -> list[str]:
    """The model's pip requirements this Python does not satisfy, as `name (current: V, required: SPEC)`.

    What MLflow's `warn_dependency_requirement_mismatches` reports, from the installed distributions'
    metadata only (file paths, URLs and options such as `-r` are skipped, as MLflow skips them)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = requirements_txt.read_text(encoding="utf-8").splitlines()[:MAX_REQUIREMENTS]
    except OSError:
        return []
    found = []
    for line in lines:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed: str | None = version(requirement.name)
        except PackageNotFoundError:
            installed = None
        specifier = requirement.specifier
        if installed is None or (specifier and not specifier.contains(installed, prereleases=True)):
            found.append(f"{requirement.name} (current: {installed or 'uninstalled'}, required: {text})")
    return found


def local_artifacts(client: Any, ref: ModelRef, destination: Path | None) -> str:
    """What to load for `ref`: its registry URI, or the local folder of proxied `mlflow-artifacts:` artifacts."""
    if destination is None or ref.name is None or ref.version is None:
        return ref.load_uri
    source = str(client.get_model_version_download_uri(ref.name, ref.version))
    if not source.startswith("mlflow-artifacts:"):
        return ref.load_uri
    root = destination.resolve()
    local = (root / urlsplit(source).path.lstrip("/")).resolve()
    if not local.is_relative_to(root) or not local.is_dir():
        raise ModelLoadFailed(f"the artifacts of {ref.uri} ({source}) are not in {root}")
    return str(local)
