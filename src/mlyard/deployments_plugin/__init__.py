"""MLflow's deployments target `mlyard`: `mlflow deployments create -t mlyard:/dev --name M -m models:/M/3`.

Registered under the `mlflow.deployments` entry point (as `mlyard`, `mlyard+http` and `mlyard+https`: MLflow
picks the plugin by the target URI's scheme). It manages the deployments of an mlyard server through its
HTTP API with mlyard's own client, so it runs on any machine that reaches the server; `predict` calls the
deployment's scoring URI. See docs/deployments.md ("MLflow deployments target").

A deployment is named after its model: mlyard serves one deployment per environment and model, behind an
endpoint (a stable scoring URI) of the same name.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

from mlyard.client import Client
from mlyard.deployments_plugin.config import (
    DeployConfig,
    ModelRef,
    check_flavor,
    parse_config,
    parse_model_uri,
)
from mlyard.deployments_plugin.errors import TargetError, invalid, not_found, translate
from mlyard.deployments_plugin.scoring import predict as send_prediction
from mlyard.deployments_plugin.target import NAME, Target, parse_target
from mlyard.errors import MlyardError, NotFound
from mlyard.views import DeploymentView

FLAVOR = "python_function"
DEPLOY_TIMEOUT = 600.0  # seconds: deploying waits until the new scoring server has loaded the model
READ_TIMEOUT = 60.0
HEALTHY = "healthy"


class MlyardDeploymentClient(BaseDeploymentClient):  # type: ignore[misc]  # MLflow's base is untyped
    """The deployments of one environment of an mlyard server (the target URI says which)."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self.target: Target = parse_target(target_uri)

    # -- deployments -------------------------------------------------------------------------------
    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None,
                          config: Mapping[str, Any] | None = None, endpoint: str | None = None) -> dict[str, Any]:
        """Deploy a registered model version as deployment `name` (the model's name); blocks until it serves."""
        check_flavor(flavor)
        _same_endpoint(name, endpoint)
        ref = _named(name, parse_model_uri(model_uri))
        settings = parse_config(config)
        with self._api(f"creating deployment {name!r}", timeout=DEPLOY_TIMEOUT) as api:
            existing = _find(api, self.target.environment, name)
            if existing is not None:
                raise TargetError(
                    f"{self.target.describe()}: deployment {name!r} already exists (version {existing.version}, "
                    f"{existing.state}): change it with `mlflow deployments update -t {self.target.uri} --name {name} "
                    f"-m models:/{name}/VERSION`", RESOURCE_ALREADY_EXISTS,
                )  # fmt: skip
            found = self._deploy(api, ref, settings)
        return _describe(found)

    def update_deployment(self, name: str, model_uri: str | None = None, flavor: str | None = None,
                          config: Mapping[str, Any] | None = None, endpoint: str | None = None) -> dict[str, Any]:
        """Serve another version (and/or other resources) behind the same scoring URI, without downtime."""
        check_flavor(flavor)
        _same_endpoint(name, endpoint)
        ref = _named(name, parse_model_uri(model_uri)) if model_uri else None
        settings = parse_config(config)
        with self._api(f"updating deployment {name!r}", timeout=DEPLOY_TIMEOUT) as api:
            current = self._existing(api, name)
            ref = ref or ModelRef(uri=f"models:/{name}/{current.version}", name=name, version=current.version)
            found = self._deploy(api, ref, DeployConfig(cpu=settings.cpu or current.cpu,
                                                        memory=settings.memory or current.memory))  # fmt: skip
        return _describe(found)

    def delete_deployment(self, name: str, config: Mapping[str, Any] | None = None,
                          endpoint: str | None = None) -> None:
        """Stop the deployment's scoring server and free its scoring URI; nothing to delete is not an error."""
        _same_endpoint(name, endpoint)
        with self._api(f"deleting deployment {name!r}") as api:
            try:
                api.deployments.delete(self.target.environment, name)
            except NotFound:
                return

    def list_deployments(self, endpoint: str | None = None) -> builtins.list[dict[str, Any]]:
        """The deployments of the target's environment (only `endpoint`'s, when given)."""
        with self._api("listing deployments") as api:
            rows = self._listed(api)
        return [_describe(row) for row in rows if endpoint is None or row.model == endpoint]

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        _same_endpoint(name, endpoint)
        with self._api(f"reading deployment {name!r}") as api:
            return _describe(self._existing(api, name))

    def predict(self, deployment_name: str | None = None, inputs: Any = None,
                endpoint: str | None = None) -> PredictionsResponse:
        """Score `inputs` (a DataFrame, a dict in one of MLflow's request shapes, a list or an array) with the
        deployment: its scoring URI answers MLflow's `{"predictions": ...}`."""
        name = deployment_name or endpoint
        if not name:
            raise invalid("name the deployment to predict with (--name NAME or --endpoint NAME)")
        _same_endpoint(name, endpoint)
        with self._api(f"reading deployment {name!r}") as api:
            found = self._existing(api, name)
        what = f"{self.target.describe()}: deployment {name!r}"
        if found.state != HEALTHY:
            raise TargetError(f"{what} is {found.state}, not serving: {found.message or 'see its log'}")
        return send_prediction(found.scoring_uri, inputs, what=what)

    def explain(self, deployment_name: str | None = None, df: Any = None, endpoint: str | None = None) -> Any:
        raise TargetError("the mlyard target does not compute explanations: call predict")

    # -- endpoints: a deployment's stable scoring URI, created and deleted with it ---------------------
    def list_endpoints(self) -> builtins.list[dict[str, Any]]:
        with self._api("listing endpoints") as api:
            return [_endpoint(row) for row in self._listed(api)]

    def get_endpoint(self, endpoint: str) -> dict[str, Any]:
        with self._api(f"reading endpoint {endpoint!r}") as api:
            return _endpoint(self._existing(api, endpoint))

    def create_endpoint(self, name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        raise invalid(f"an mlyard endpoint comes with its deployment: `mlflow deployments create -t {self.target.uri} "
                      f"--name {name} -m models:/{name}/VERSION` creates both")  # fmt: skip

    def update_endpoint(self, endpoint: str, config: Mapping[str, Any] | None = None) -> None:
        raise invalid(f"an mlyard endpoint has no settings of its own: `mlflow deployments update -t {self.target.uri} "
                      f"--name {endpoint} ...` changes what it serves")  # fmt: skip

    def delete_endpoint(self, endpoint: str) -> None:
        self.delete_deployment(endpoint)

    # -- the server ----------------------------------------------------------------------------------
    @contextmanager
    def _api(self, doing: str, *, timeout: float = READ_TIMEOUT) -> Iterator[Client]:
        """mlyard's client for the target's server; its errors become TargetErrors saying what was being done."""
        try:
            with Client(self.target.server, self.target.token, timeout=timeout) as api:
                yield api
        except MlyardError as exc:
            raise translate(exc, f"{self.target.describe()}: {doing}") from None

    def _listed(self, api: Client) -> builtins.list[DeploymentView]:
        api.environments.get(self.target.environment)  # an unknown environment is an error, not an empty list
        return api.deployments.list(env=self.target.environment)

    def _existing(self, api: Client, name: str) -> DeploymentView:
        found = _find(api, self.target.environment, name)
        if found is None:
            raise not_found(
                f"{self.target.describe()}: no deployment named {name!r}; create it with `mlflow deployments create "
                f"-t {self.target.uri} --name {name} -m models:/{name}/VERSION` (`mlflow deployments list "
                f"-t {self.target.uri}` lists them)"
            )
        return found

    def _deploy(self, api: Client, ref: ModelRef, settings: DeployConfig) -> DeploymentView:
        env = self.target.environment
        version, stage = ref.version, ref.stage
        if ref.alias is not None and ref.alias.lower() in ("production", "staging"):
            stage = ref.alias.capitalize()  # mlyard's stages are these two aliases
        elif ref.alias is not None or ref.latest:
            version = _resolve(api.models.get(ref.name, env), ref, env)
        body: dict[str, Any] = {"env": env, "model": ref.name, "version": version, "stage": stage, "target": "local"}
        if settings.cpu is not None:
            body["cpu"] = settings.cpu
        if settings.memory is not None:
            body["memory"] = settings.memory
        return api.deployments.create(body)


def _resolve(model: Any, ref: ModelRef, env: str) -> str:
    """The version number an alias or `latest` names, from the registry's model."""
    model = model if isinstance(model, dict) else {}
    if ref.latest:
        if not model.get("latest_version"):
            raise not_found(f"model {ref.name!r} has no version in environment {env}")
        return str(model["latest_version"])
    aliases = model.get("aliases") or {}
    if ref.alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise not_found(f"model {ref.name!r} has no alias {ref.alias!r} in environment {env} (aliases: {known})")
    return str(aliases[ref.alias])


def _find(api: Client, env: str, name: str) -> DeploymentView | None:
    try:
        return api.deployments.get(env, name)
    except NotFound:
        return None


def _named(name: str, ref: ModelRef) -> ModelRef:
    if name != ref.name:
        raise invalid(
            f"deployment name {name!r} is not the model's name {ref.name!r} ({ref.uri}): mlyard serves one "
            f"deployment per model and environment, named after the model; use --name {ref.name}"
        )
    return ref


def _same_endpoint(name: str, endpoint: str | None) -> None:
    if endpoint is not None and endpoint != name:
        raise invalid(f"endpoint {endpoint!r} does not hold deployment {name!r}: an mlyard endpoint holds the one "
                      "deployment of the same name; leave out --endpoint")  # fmt: skip


def _describe(found: DeploymentView) -> dict[str, Any]:
    """A deployment as MLflow's API returns it: mlyard's fields, with `name` and `flavor`."""
    return {**found.to_dict(), "name": found.name or found.model, "flavor": FLAVOR, "endpoint": found.model}


def _endpoint(found: DeploymentView) -> dict[str, Any]:
    return {"name": found.model, "environment": found.environment, "url": found.url,
            "scoring_uri": found.scoring_uri, "deployment": found.name or found.model, "version": found.version,
            "state": found.state}  # fmt: skip


def run_local(name: str, model_uri: str, flavor: str | None = None, config: Mapping[str, Any] | None = None) -> None:
    """`mlflow deployments run-local -t mlyard --name M -m models:/M/3 [-C port=5000]`: serve the model in this
    process with mlyard's scoring server (the registry: MLFLOW_TRACKING_URI) until Ctrl-C."""
    from mlyard.serving.server import main

    check_flavor(flavor)
    options = dict(config or {})
    port = str(options.pop("port", "5000"))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise invalid(f"invalid config port={port[:16]!r}: use a port number, e.g. -C port=5000")
    settings = parse_config(options)
    argv = ["--model-uri", model_uri, "--port", port]
    argv += ["--cpu", str(settings.cpu)] if settings.cpu else []
    argv += ["--memory", str(settings.memory)] if settings.memory else []
    code = main(argv)
    if code:
        raise TargetError(f"serving {model_uri} as {name!r} on port {port} failed (exit code {code}): see above")


def target_help() -> str:
    return f"""The {NAME} target deploys registered MLflow model versions to an mlyard server's environment.

Target URIs:
  {NAME}                                  environment dev of the CLI's server (MLYARD_URL, else ~/.mlyard/cli.json)
  {NAME}:/ENV                             environment ENV of that server
  {NAME}+http://HOST:PORT[/PREFIX]/ENV    environment ENV of the server at http://HOST:PORT[/PREFIX]
  {NAME}+https://HOST[/PREFIX]/ENV        the same over TLS
The token: MLYARD_TOKEN, else MLFLOW_TRACKING_TOKEN when MLFLOW_TRACKING_URI is the server's
<server>/mlflow/<env>, else the CLI config's token when it names the same server. Deploying needs the
pipelines:run scope, reading repo:read.

Deployments are named after their model (one per model and environment):
  mlflow deployments create -t {NAME}:/dev --name churn -m models:/churn/3 -C cpu=1 -C memory=2G
  mlflow deployments update -t {NAME}:/dev --name churn -m models:/churn/Production
Model URIs: models:/NAME/VERSION, models:/NAME/Production, models:/NAME/Staging, models:/NAME/latest,
models:/NAME@ALIAS (resolved once, when deploying).

Config (-C): cpu (cores: 1, 0.5, 500m), memory (GB: 2, 2G, 512M, 1.5Gi); update keeps what is not given.
run-local also takes -C port=5000.
An endpoint is the deployment's stable scoring URI, created and deleted with it (get-endpoint, list-endpoints).
"""
