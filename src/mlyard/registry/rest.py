"""A light client of MLflow's REST API: the calls `Registry` makes, over httpx, without importing MLflow.

The mlyard server talks to each environment's MLflow server (mlyard.registry.tracking_server, on its private
Unix socket) with this client, so the server itself never imports MLflow (about 2 s of CPU and its memory): its
models API, stage changes and deployments use the same MLflow process that serves `/mlflow/<env>`. The
methods have the names, arguments and results of `mlflow.MlflowClient`'s (the attributes `Registry` reads),
and errors are `ApiError`s carrying MLflow's error code; `Registry` wraps `MlflowClient` so that it raises the
same errors. The JSON is MLflow 3.17.2's REST API (mlflow/protos/model_registry.proto, service.proto):
tests/registry/test_rest.py checks this client against `MlflowClient` on the same store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/2.0/mlflow"
MAX_ANSWER_BYTES = 64 * 1024**2  # one answer of the registry API (a page of at most 1000 versions)
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class ApiError(Exception):
    """A registry call that MLflow refused or that did not reach it (`error_code` as MLflow names it)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version, as MLflow's entity has it
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    current_stage: str = "None"
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    source: str = ""
    status: str = ""
    description: str = ""
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    artifact_uri: str = ""


@dataclass(frozen=True)
class Run:
    data: RunData
    info: RunInfo | None = None


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str


class Page(list[Any]):
    """One page of a search, with MLflow's `token` of the next one (None: the last page)."""

    def __init__(self, items: Iterable[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or () if isinstance(t, dict) and "key" in t}


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def registered_model(data: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel(
        name=str(data["name"]),
        aliases={str(a["alias"]): int(a["version"]) for a in data.get("aliases") or () if "alias" in a},
        tags=_tags(data.get("tags")),
        description=str(data.get("description") or ""),
        creation_timestamp=_int(data.get("creation_timestamp")),
        last_updated_timestamp=_int(data.get("last_updated_timestamp")),
    )


def model_version(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=str(data["name"]),
        version=int(data["version"]),
        current_stage=str(data.get("current_stage") or "None"),
        tags=_tags(data.get("tags")),
        aliases=tuple(str(a) for a in data.get("aliases") or ()),
        run_id=str(data["run_id"]) if data.get("run_id") else None,
        source=str(data.get("source") or ""),
        status=str(data.get("status") or ""),
        description=str(data.get("description") or ""),
        creation_timestamp=_int(data.get("creation_timestamp")),
        last_updated_timestamp=_int(data.get("last_updated_timestamp")),
    )


def _read(answer: httpx.Response, too_large: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ApiError("INTERNAL_ERROR", too_large)
        chunks.append(chunk)
    return b"".join(chunks)


class RestClient:
    """MLflow's registry over its REST API, through `http` (an httpx client whose base URL is the server's:
    `http://localhost` on a Unix socket transport for an environment's MLflow server)."""

    def __init__(self, http: httpx.Client, where: str) -> None:
        self.http = http
        self.where = where  # named in errors: "the MLflow server of environment 'dev'"

    def _call(self, method: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{API}/{endpoint}"
        if method == "GET":
            request = self.http.build_request("GET", url, params={k: v for k, v in body.items() if v is not None})
        else:
            request = self.http.build_request(method, url, json=body)
        try:
            answer = self.http.send(request, stream=True)
            try:
                content = _read(answer, f"{self.where} answered {endpoint} with more than {MAX_ANSWER_BYTES} bytes")
            finally:
                answer.close()
        except httpx.TransportError as exc:
            raise ApiError("TEMPORARILY_UNAVAILABLE", f"{self.where} is not reachable ({exc!r}); try again") from None
        try:
            data = json.loads(content) if content else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiError("INTERNAL_ERROR", f"{self.where} answered {endpoint} with HTTP {answer.status_code} and no "
                           f"JSON: {content[:200]!r}")  # fmt: skip
        if answer.status_code != 200:
            code = str(data.get("error_code") or "INTERNAL_ERROR")
            raise ApiError(code, str(data.get("message") or f"HTTP {answer.status_code} from {endpoint}"))
        return data

    # -- registered models and versions ------------------------------------------------------------
    def get_registered_model(self, name: str) -> RegisteredModel:
        return registered_model(self._call("GET", "registered-models/get", {"name": name})["registered_model"])

    def search_registered_models(self, max_results: int = 100, page_token: str | None = None) -> Page:
        data = self._call("GET", "registered-models/search", {"max_results": max_results, "page_token": page_token})
        found = [registered_model(m) for m in data.get("registered_models") or ()]
        return Page(found, data.get("next_page_token") or None)

    def search_model_versions(
        self, filter_string: str | None = None, max_results: int = 10000, page_token: str | None = None
    ) -> Page:
        body = {"filter": filter_string, "max_results": max_results, "page_token": page_token}
        data = self._call("GET", "model-versions/search", body)
        return Page([model_version(v) for v in data.get("model_versions") or ()], data.get("next_page_token") or None)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        data = self._call("GET", "model-versions/get", {"name": name, "version": str(version)})
        return model_version(data["model_version"])

    def set_registered_model_alias(self, name: str, alias: str, version: int | str) -> None:
        self._call("POST", "registered-models/alias", {"name": name, "alias": alias, "version": str(version)})

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "registered-models/alias", {"name": name, "alias": alias})

    def transition_model_version_stage(
        self, name: str, version: int | str, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        body = {"name": name, "version": str(version), "stage": stage,
                "archive_existing_versions": archive_existing_versions}  # fmt: skip
        return model_version(self._call("POST", "model-versions/transition-stage", body)["model_version"])

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("POST", "registered-models/set-tag", {"name": name, "key": key, "value": value})

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        body = {"name": name, "version": str(version), "key": key, "value": value}
        self._call("POST", "model-versions/set-tag", body)

    # -- runs and experiments ------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        run = self._call("GET", "runs/get", {"run_id": run_id})["run"]
        data, info = run.get("data") or {}, run.get("info") or {}
        metrics = {str(m["key"]): float(m["value"]) for m in data.get("metrics") or () if "key" in m and "value" in m}
        return Run(RunData(metrics), RunInfo(str(info.get("run_id") or run_id), str(info.get("artifact_uri") or "")))

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", max_results: int = 1000) -> Page:
        """One page of the runs that match (MlflowClient's default page: 1000), each with its `info.run_id`."""
        body = {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": max_results}
        data = self._call("POST", "runs/search", body)
        runs = [Run(RunData({}), RunInfo(str(run["info"]["run_id"]))) for run in data.get("runs") or ()]
        return Page(runs, data.get("next_page_token") or None)

    def search_experiments(self, max_results: int = 1000) -> Page:
        data = self._call("POST", "experiments/search", {"max_results": max_results})
        found = [Experiment(str(e["experiment_id"]), str(e.get("name") or ""), str(e.get("artifact_location") or ""))
                 for e in data.get("experiments") or ()]  # fmt: skip
        return Page(found, data.get("next_page_token") or None)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            data = self._call("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]
        except ApiError as exc:
            if exc.error_code == NOT_FOUND:
                return None
            raise
        return Experiment(str(data["experiment_id"]), str(data["name"]), str(data.get("artifact_location") or ""))

    def create_experiment(self, name: str, artifact_location: str | None = None) -> str:
        body = {"name": name, **({"artifact_location": artifact_location} if artifact_location else {})}
        return str(self._call("POST", "experiments/create", body)["experiment_id"])


class Translating:
    """`MlflowClient` (any object) whose MlflowExceptions (`errors`) become `ApiError`s, so `Registry` handles one
    kind of error whichever client it has; every other attribute is the wrapped client's."""

    def __init__(self, client: Any, errors: type[Exception]) -> None:
        self._client = client
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return self._wrap(attr)

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        errors = self._errors

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except errors as exc:
                code = str(getattr(exc, "error_code", "INTERNAL_ERROR"))
                raise ApiError(code, str(getattr(exc, "message", exc))) from exc

        return call
