"""What `mlflow deployments create/update` pass to the target: the `-C key=value` options and the model URI.

    -C cpu=1      cores: a number (0.5, 2) or Kubernetes millicores (500m)
    -C memory=2G  GB (GiB, as the server's --memory): 2, 1.5, 2G, 2Gi, 2GB, 512M, 512Mi

The model URI names a registered model version: models:/NAME/3, models:/NAME/Production (or Staging),
models:/NAME/latest, models:/NAME@ALIAS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlyard.deployments_plugin.errors import invalid

CONFIG_KEYS = ("cpu", "memory")
MAX_CONFIG_VALUE = 64  # characters of one -C value
MAX_MODEL_URI = 1024  # characters of a model URI
FLAVORS = (None, "", "python_function", "pyfunc")  # the scoring server loads every model as a pyfunc
STAGES = {"production": "Production", "staging": "Staging"}  # the stages that hold one version
_MEMORY = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?:(?P<unit>[kmgt])i?b?)?", re.IGNORECASE)
_MEMORY_UNITS = {"": 1.0, "k": 1024.0**-2, "m": 1 / 1024, "g": 1.0, "t": 1024.0}
_CPU = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<milli>m?)", re.IGNORECASE)
_NAME_REF = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<ref>[^/@]+)|@(?P<alias>[^/@]+))/?")


@dataclass(frozen=True)
class DeployConfig:
    """Resources asked for with -C (None: the server's default on create, unchanged on update)."""

    cpu: float | None = None
    memory: float | None = None  # GB


@dataclass(frozen=True)
class ModelRef:
    """A registered model version as a models:/ URI names it: exactly one of version, stage, alias, latest."""

    uri: str
    name: str
    version: str | None = None
    stage: str | None = None
    alias: str | None = None
    latest: bool = False


def parse_config(config: Mapping[str, Any] | None) -> DeployConfig:
    """The -C options; unknown keys and bad values are errors naming the key and the accepted forms."""
    values = dict(config or {})
    unknown = sorted(str(key) for key in values if key not in CONFIG_KEYS)
    if unknown:
        raise invalid(
            f"unknown config {', '.join(repr(k) for k in unknown)} for the mlyard target: it takes "
            f"{', '.join(f'-C {k}=...' for k in CONFIG_KEYS)} (one scoring server per deployment, no replicas)"
        )
    cpu = _number(values, "cpu", _CPU, _cores_per, "1, 0.5 or 500m")
    memory = _number(values, "memory", _MEMORY, _gb_per, "2, 2G, 512M or 1.5Gi")
    return DeployConfig(cpu=cpu, memory=memory)


def _cores_per(match: re.Match[str]) -> float:
    return 0.001 if match["milli"] else 1.0


def _gb_per(match: re.Match[str]) -> float:
    return _MEMORY_UNITS[(match["unit"] or "").lower()]


def _number(
    values: dict[str, Any], key: str, pattern: re.Pattern[str], unit: Callable[[re.Match[str]], float], examples: str
) -> float | None:
    value = values.get(key)
    if value is None:
        return None
    text = str(value).strip()
    match = pattern.fullmatch(text) if len(text) <= MAX_CONFIG_VALUE and not isinstance(value, bool) else None
    number = float(match["number"]) * unit(match) if match else math.nan
    if not math.isfinite(number) or number <= 0:
        raise invalid(f"invalid config {key}={str(value)[:MAX_CONFIG_VALUE]!r}: use a number above 0, e.g. {examples}")
    return number


def check_flavor(flavor: str | None) -> None:
    if flavor not in FLAVORS:
        raise invalid(f"unsupported flavor {flavor!r}: the mlyard target serves models as python_function; "
                      "leave out --flavor")  # fmt: skip


def parse_model_uri(uri: str) -> ModelRef:
    """The registered model version `uri` names; other URIs (runs:/, paths) are refused: register the model."""
    text = uri.strip() if isinstance(uri, str) else ""
    match = _NAME_REF.fullmatch(text) if len(text) <= MAX_MODEL_URI else None
    if match is None:
        raise invalid(
            f"invalid model URI {str(uri)[:100]!r}: the mlyard target deploys registered model versions, "
            "models:/NAME/VERSION, models:/NAME/Production, models:/NAME/Staging, models:/NAME/latest or "
            "models:/NAME@ALIAS (register a run's model first: mlflow.register_model)"
        )
    name, ref, alias = match["name"], match["ref"], match["alias"]
    if alias is not None:
        return ModelRef(uri=text, name=name, alias=alias)
    if ref.isdigit() and int(ref) > 0:
        return ModelRef(uri=text, name=name, version=str(int(ref)))
    if ref.lower() in STAGES:
        return ModelRef(uri=text, name=name, stage=STAGES[ref.lower()])
    if ref.lower() == "latest":
        return ModelRef(uri=text, name=name, latest=True)
    raise invalid(
        f"invalid model URI {text!r}: {ref!r} is not a version number, Production, Staging or latest "
        "(stages Archived and None can hold many versions: give a version number)"
    )
