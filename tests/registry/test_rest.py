"""The light REST client (mlyard.registry.rest) that the server uses to reach an environment's registry through
its MLflow server: the same answers as `MlflowClient` on the same store, with MLflow's client as the oracle of
every write, the same errors, and a server that never imports MLflow to serve the models API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.registry import Registry
from mlyard.registry.rest import RestClient
from mlyard.registry.tracking_server import TrackingServer, TrackingServerSpec, remove_socket_folder, socket_folder
from tests.conftest import mlyard

from .conftest import Store, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error::FutureWarning")]


def rest_client(socket: Path) -> RestClient:
    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://localhost", timeout=60)
    return RestClient(http, "the MLflow server of environment 'test'")


@pytest.fixture(scope="module")
def served(store: Store) -> Iterator[Registry]:
    """The store's registry through its own MLflow server process (as the mlyard server reaches it)."""
    folder = socket_folder()
    server = TrackingServer(TrackingServerSpec.for_environment("test", store.uri, folder))
    server.start()
    client = rest_client(server.spec.socket)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.running(), server.exit_report()
            try:
                if client.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.1)
        yield Registry(store.uri, client=client)
    finally:
        client.http.close()
        server.stop()
        remove_socket_folder(folder)


def test_reads_agree_with_mlflow_client(
    served: Registry, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    registry.stage(name, 1, "Production", by="ann", reason="first")
    registry.stage(name, 2, "Staging", by="bob")
    MlflowClient(tracking_uri=registry.tracking_uri).set_registered_model_alias(name, "champion", "3")
    listed = {m["name"]: m for m in served.list_models()}
    assert listed[name] == {m["name"]: m for m in registry.list_models()}[name]
    shown = served.show_model(name)
    assert shown == registry.show_model(name)
    assert shown["aliases"] == {"production": 1, "staging": 2, "champion": 3}
    assert shown["versions"][0]["metrics"] == {"accuracy": pytest.approx(0.7)}  # the run's, through runs/get
    assert served.history(name) == registry.history(name)
    for choice in ({"stage": "Staging"}, {"version": 3}, {"alias": "champion"}, {}):
        assert served.version_for(name, **choice) == registry.version_for(name, **choice)  # type: ignore[arg-type]
    run_id = shown["versions"][0]["run_id"]  # where the run keeps its artifacts (a monitoring report's baseline)
    location = MlflowClient(tracking_uri=registry.tracking_uri).get_run(run_id).info.artifact_uri
    assert served.run_artifact_uri(run_id) == registry.run_artifact_uri(run_id) == location
    for either in (served, registry):
        with pytest.raises(NotFound):
            either.run_artifact_uri("0" * 32)


def test_runs_found_by_tag_agree_with_mlflow_client(served: Registry, registry: Registry) -> None:
    """What the server lists as a workspace job's runs (tagged with the job's id) at its end."""
    oracle = MlflowClient(tracking_uri=registry.tracking_uri)
    experiment = oracle.create_experiment("rest-search-runs")
    tagged = {oracle.create_run(experiment, tags={"mlyard.job_id": "41"}).info.run_id for _ in range(2)}
    oracle.create_run(experiment, tags={"mlyard.job_id": "42"})
    ids = [e.experiment_id for e in served.client.search_experiments()]
    assert ids == [e.experiment_id for e in oracle.search_experiments()]
    query = "tags.`mlyard.job_id` = '41'"
    found = {run.info.run_id for run in served.client.search_runs(ids, filter_string=query)}
    assert found == tagged == {run.info.run_id for run in oracle.search_runs(ids, filter_string=query)}


def test_writes_are_seen_by_mlflow_client(
    served: Registry, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(3)
    oracle = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    served.stage(name, 1, "Production", by="ann")
    served.stage(name, 2, "staging", by="ann")
    entry = served.promote(name, 2, by="ci", reason="gate passed")
    assert (entry["from"], entry["to"], entry["archived"]) == ("Staging", "Production", 1)
    assert oracle.get_registered_model(name).aliases == {"production": 2}
    assert served.client.get_registered_model(name).aliases == {"production": 2}  # MLflow's types
    legacy = {int(mv.version): mv.current_stage for mv in oracle.search_model_versions(f"name = '{name}'")}
    assert legacy == {1: "Archived", 2: "Production", 3: "None"}
    back = served.rollback(name, by="ops")
    assert back["version"] == 1 and oracle.get_registered_model(name).aliases == {"production": 1}
    served.tag_version(name, 3, {"git.commit": "abc", "tests": None})
    assert oracle.get_model_version(name, "3").tags == {"git.commit": "abc", "tests": ""}
    assert [e["to"] for e in registry.history(name)] == ["Production", "Staging", "Production", "Production"]


def test_errors_are_the_in_process_registrys(
    served: Registry, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(2)
    for call in (lambda r: r.show_model("no-such-model"), lambda r: r.version_for(name, version=9),
                 lambda r: r.version_for(name, stage="Production"), lambda r: r.rollback(name)):  # fmt: skip
        with pytest.raises(NotFound) as direct:
            call(registry)
        with pytest.raises(NotFound) as through:
            call(served)
        assert through.value.message == direct.value.message
    with pytest.raises(InvalidInput, match="choose one of Staging"):
        served.stage(name, 1, "Prod")


def test_experiments_are_created_with_their_artifact_folder(served: Registry, tmp_path: Path) -> None:
    client = served.client
    assert client.get_experiment_by_name("/ml_apps/rest-test") is None
    location = (tmp_path / "mlartifacts" / "rest-test").as_uri()
    created = client.create_experiment("/ml_apps/rest-test", artifact_location=location)
    oracle = MlflowClient(tracking_uri=served.tracking_uri).get_experiment_by_name("/ml_apps/rest-test")
    assert oracle is not None and oracle.experiment_id == created and oracle.artifact_location == location
    assert client.get_experiment_by_name("/ml_apps/rest-test").experiment_id == created


def test_an_unreachable_mlflow_server_is_an_operation_failure(store: Store, tmp_path: Path) -> None:
    gone = Registry(store.uri, client=rest_client(tmp_path / "gone.sock"))
    with pytest.raises(OperationFailed, match="the MLflow server of environment 'test' is not reachable"):
        gone.list_models()


# The server's side: its models API and stage changes, served without MLflow in its own process.
SERVER = r"""
import json, os, sys
from pathlib import Path
from fastapi.testclient import TestClient
from mlyard.app import create_app
from mlyard.settings import Settings

app = create_app(Settings.load(Path(sys.argv[1])), agents=0)
headers = {"Authorization": f"Bearer {sys.argv[2]}"}
with TestClient(app) as client:
    created = client.post("/api/v1/environments", json={"name": "qa"}, headers=headers)
    fresh = client.get("/api/v1/models", params={"env": "qa"}, headers=headers)
    before = client.get("/health").json()["mlflow_zygote"]
    listed = client.get("/api/v1/models", params={"env": "dev"}, headers=headers)
    staged = client.post("/api/v1/models/churn/versions/2/stage", json={"stage": "Production"}, headers=headers)
    shown = client.get("/api/v1/models/churn", params={"env": "dev"}, headers=headers)
    missing = client.get("/api/v1/models/nope", params={"env": "dev"}, headers=headers)
print(json.dumps({"fresh": [created.status_code, fresh.status_code, fresh.json(), before],
                  "listed": listed.json(), "staged": staged.status_code, "shown": shown.json(),
                  "missing": [missing.status_code, missing.json()], "mlflow": "mlflow" in sys.modules}))
"""


def test_the_server_serves_the_models_api_without_importing_mlflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = json.loads(mlyard("init", "--json", home=home).stdout)["token"]
    uri = f"sqlite:///{home.resolve()}/envs/dev/mlflow.db"
    register_versions(uri, "churn")
    env = {"MLYARD_HOME": str(home), "MLYARD_REGISTRY_WARM": "0", "MLYARD_SERVING_WARM_POOL": "0"}
    out = subprocess.run([sys.executable, "-c", SERVER, str(home), token], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    # a new environment's models: none, answered without starting an MLflow server (nor creating its store)
    assert answer["fresh"] == [201, 200, [], None]
    assert not (home / "envs" / "qa" / "mlflow.db").exists()
    assert [(m["name"], m["latest_version"]) for m in answer["listed"]] == [("churn", 3)]
    assert answer["staged"] == 200
    assert {v["version"]: v["stage"] for v in answer["shown"]["versions"]} == {1: "None", 2: "Production", 3: "None"}
    assert answer["missing"][0] == 404 and "model 'nope' not found" in json.dumps(answer["missing"][1])
    assert answer["mlflow"] is False  # the MLflow server of dev answered; the server imported no MLflow
    oracle = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert oracle.get_registered_model("churn").aliases == {"production": 2}
