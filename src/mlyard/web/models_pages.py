"""The web UI's models and deployments: an environment's registered models, a model's versions with their
lineage and promotion history (with Rollback), a comparison of two versions, a deployment's health and
traffic, and its monitoring report (drift against the baseline, latency, errors, quality over time).

Registries of environments with the embedded store are read directly (mlyard.services.model_views: no
MLflow import, milliseconds); a remote registry and a drift report are read in the background (web.slow)
while the page says what it is loading and reloads itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mlyard.errors import InvalidInput, MlyardError, NotFound
from mlyard.monitoring import drift
from mlyard.names import check_env_name, check_repo_name
from mlyard.services import deployments, environments, model_views, models, monitoring
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.web.pages import action, page
from mlyard.web.slow import Slow

router = APIRouter(include_in_schema=False)
_slow = Slow(ttl=30.0)
KEY_METRICS = ("accuracy", "f1", "roc_auc", "precision", "recall", "rmse", "mae", "r2")
WINDOWS = ("1h", "6h", "24h", "7d", "30d")


def _env(platform: Platform, env: str) -> str:
    try:
        check_env_name(env)
    except InvalidInput:  # a name that cannot be an environment's: not found, as for a page
        raise NotFound(f"environment {env[:80]!r} not found") from None
    environments.get_environment(platform, env)
    return env


def _loading(what: str, waited: float) -> dict[str, Any]:
    # `reload`, not `refresh`: a refresh is for browsers without scripts (a run page follows itself with one);
    # a loading page reloads itself in every browser
    return {"template": "loading.html", "what": what, "waited": waited, "reload": 1}


def _key_metrics(versions: Any) -> list[str]:
    names = {k for v in versions for k in v.metrics}
    first = [m for m in KEY_METRICS if m in names]
    return (first + sorted(names - set(first)))[:4]


def _model_detail(platform: Platform, env: str, name: str) -> tuple[bool, Any]:
    if model_views.reads_directly(platform, env):
        return True, model_views.show_model(platform, env, name)
    return _slow.get(("model", env, name), lambda: model_views.show_model(platform, env, name))


# -- pages ------------------------------------------------------------------------------------------
def _models(request: Request, platform: Platform) -> dict[str, Any]:
    envs = environments.list_environments(platform)
    env = _env(platform, request.query_params.get("env") or (envs[0]["name"] if envs else "dev"))
    registry_error = ""
    found: list[model_views.ModelSummary] = []
    if model_views.reads_directly(platform, env):
        found = model_views.list_models(platform, env)
    else:
        try:
            ready, value = _slow.get(("models", env), lambda: model_views.list_models(platform, env))
        except MlyardError as exc:  # an unreachable remote MLflow must not hide the deployments
            ready, value, registry_error = True, [], exc.message
        if not ready:
            return _loading(f"the model registry of {env}", value)
        found = value
    deployed = deployments.list_deployments(platform, env=env)
    return {"template": "models_list.html", "environments": envs, "env": env, "models": found,
            "registry_error": registry_error, "deployments": deployed}  # fmt: skip


def _model(request: Request, platform: Platform, env: str, name: str) -> dict[str, Any]:
    env = _env(platform, env)
    ready, detail = _model_detail(platform, env, name)
    if not ready:
        return _loading(f"model {name} of {env}", detail)
    target = model_views.rollback_target(detail.history, detail.production)
    return {"template": "models_detail.html", "env": env, "model": detail, "rollback_to": target,
            "key_metrics": _key_metrics(detail.versions)}  # fmt: skip


def _version(request: Request, platform: Platform, env: str, name: str, version: str) -> dict[str, Any]:
    env = _env(platform, env)
    number = model_views.check_version_number(version)
    ready, detail = _model_detail(platform, env, name)
    if not ready:
        return _loading(f"model {name} of {env}", detail)
    return {"template": "models_version.html", "env": env, "model": detail, "v": detail.version(number)}


def _compare(request: Request, platform: Platform, env: str, name: str) -> dict[str, Any]:
    env = _env(platform, env)
    ready, detail = _model_detail(platform, env, name)
    if not ready:
        return _loading(f"model {name} of {env}", detail)
    numbers = [v.version for v in detail.versions]
    a_text = request.query_params.get("a") or str(numbers[1] if len(numbers) > 1 else numbers[0] if numbers else 1)
    b_text = request.query_params.get("b") or str(numbers[0] if numbers else 1)
    a, b = model_views.check_version_number(a_text), model_views.check_version_number(b_text)
    rows = model_views.compare(detail, a, b)
    return {"template": "models_compare.html", "env": env, "model": detail, "a": detail.version(a),
            "b": detail.version(b), "rows": rows}  # fmt: skip


def _deployment(request: Request, platform: Platform, env: str, name: str) -> dict[str, Any]:
    env = _env(platform, env)
    check_repo_name(name)
    found = deployments.show(platform, env, name)
    probe = model_views.health(found) if found["state"] == deployments.HEALTHY else None
    recent = model_views.traffic(platform, env, name, "1h")
    return {"template": "models_deployment.html", "env": env, "d": found, "health": probe, "recent": recent}


def _monitoring(request: Request, platform: Platform, env: str, name: str) -> dict[str, Any]:
    env = _env(platform, env)
    check_repo_name(name)
    window = request.query_params.get("window") or "24h"
    monitoring.parse_window(window)  # a bad window is an error page at once, not a loading page
    found = deployments.show(platform, env, name)
    ready, report = _slow.get(("monitor", env, name, window),
                              lambda: monitoring.monitor(platform, env, name, window=window))  # fmt: skip
    if not ready:
        return _loading(f"the drift and quality report of {name} over {window}", report)
    thresholds = {"psi_drift": drift.PSI_DRIFT, "p_value": drift.P_VALUE, "ks_effect": drift.KS_EFFECT,
                  "psi_effect": drift.PSI_EFFECT, "min_samples": drift.MIN_SAMPLES}  # fmt: skip
    return {"template": "monitoring.html", "env": env, "d": found, "report": report, "window": window,
            "windows": WINDOWS, "thresholds": thresholds}  # fmt: skip


# -- buttons ----------------------------------------------------------------------------------------
def _rollback(platform: Platform, principal: Principal, form: dict[str, str], env: str, name: str) -> str:
    env = _env(platform, env)
    models.rollback(platform, principal, env, name, reason=form.get("reason", "").strip()[:500] or "from the web UI")
    _slow.drop(("model", env, name))
    return f"/models/{env}/{quote(name, safe='')}"


router.add_api_route("/models", page(_models), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/models/{env}/{name}", page(_model), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/models/{env}/{name}/compare", page(_compare), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/models/{env}/{name}/versions/{version}", page(_version), methods=["GET"],
                     response_class=HTMLResponse)  # fmt: skip
router.add_api_route("/models/{env}/{name}/rollback", action(_rollback), methods=["POST"])
router.add_api_route("/deployments/{env}/{name}", page(_deployment), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/deployments/{env}/{name}/monitoring", page(_monitoring), methods=["GET"],
                     response_class=HTMLResponse)  # fmt: skip
