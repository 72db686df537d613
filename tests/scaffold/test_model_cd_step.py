"""Model CD in one process (`mlops/registry.py deploy`, the deploy-model pipeline's step) on targets other than
mlyard's (its own target runs end to end in tests/models/test_quickstart.py and test_model_ci.py): MLflow's
deployments API of any plugin (create the first time, update after, with the same config), and Databricks'
serving endpoints; the version is tagged with where it serves. The registry is MLflow's own (SQLite)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

MODEL = "m"


@dataclass
class Registry:
    module: Any  # the project's mlops/registry.py
    client: Any  # an MlflowClient of the same store


@pytest.fixture(scope="module")
def registry(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    from mlflow import MlflowClient
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # A copy: importing the shared demo project's file would write its __pycache__ into the project, whose
    # files tests/scaffold/test_projects.py lists.
    script = tmp_path_factory.mktemp("cd-script") / "registry.py"
    shutil.copyfile(demo_project / "mlops/registry.py", script)
    spec = importlib.util.spec_from_file_location("project_registry_cd", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('cd') / 'mlflow.db'}")
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # only the environment decides, as in a step's process
        patch.setattr(tracking_utils, "_tracking_uri", None)
        patch.setattr(registry_utils, "_registry_uri", None)
        client = MlflowClient()
        client.create_registered_model(MODEL)
        for _ in range(2):
            client.create_model_version(MODEL, source="file:///nowhere/model")
        yield Registry(module, client)


def main(registry: Registry, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = registry.module.main(["--model", MODEL, "deploy", *args])
    return code, capsys.readouterr().out.splitlines()


# -- a deployments plugin of another vendor (as azureml or sagemaker would be), registered under `acme` --------
@dataclass
class AcmeTarget:
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    fail: str = ""  # a message create/update fail with


def acme_plugin(state: AcmeTarget) -> types.ModuleType:
    from mlflow.deployments import BaseDeploymentClient
    from mlflow.exceptions import MlflowException

    class AcmeClient(BaseDeploymentClient):  # type: ignore[misc]
        def _deploy(self, what: str, name: str, model_uri: str, config: dict[str, str]) -> dict[str, Any]:
            state.calls.append((what, model_uri, dict(config)))
            if state.fail:
                raise MlflowException(state.fail)
            state.deployments[name] = {"name": name, "model_uri": model_uri, "flavor": "python_function",
                                       "scoring_uri": f"https://acme.example/{name}/score"}  # fmt: skip
            return state.deployments[name]

        def create_deployment(self, name: str, model_uri: str, flavor: Any = None, config: Any = None,
                              endpoint: Any = None) -> dict[str, Any]:  # fmt: skip
            assert name not in state.deployments, "created twice"
            return self._deploy("create", name, model_uri, config)

        def update_deployment(self, name: str, model_uri: Any = None, flavor: Any = None, config: Any = None,
                              endpoint: Any = None) -> dict[str, Any]:  # fmt: skip
            return self._deploy("update", name, model_uri, config)

        def get_deployment(self, name: str, endpoint: Any = None) -> dict[str, Any]:
            if name not in state.deployments:
                raise MlflowException(f"no deployment {name}", error_code="RESOURCE_DOES_NOT_EXIST")
            return state.deployments[name]

        def delete_deployment(self, name: str, config: Any = None, endpoint: Any = None) -> None:
            state.deployments.pop(name, None)

        def list_deployments(self, endpoint: Any = None) -> list[dict[str, Any]]:
            return list(state.deployments.values())

        def predict(self, deployment_name: Any = None, inputs: Any = None, endpoint: Any = None) -> Any:
            raise NotImplementedError

    module = types.ModuleType("acme_deployments")
    module.AcmeClient = AcmeClient  # type: ignore[attr-defined]
    module.run_local = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    module.target_help = lambda: "acme"  # type: ignore[attr-defined]
    return module


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> AcmeTarget:
    from mlflow.deployments.interface import plugin_store

    state = AcmeTarget()
    monkeypatch.setitem(plugin_store.registry, "acme", acme_plugin(state))
    return state


def test_model_cd_creates_then_updates_with_the_config_and_tags_the_version(
    registry: Registry, acme: AcmeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.client.set_registered_model_alias(MODEL, "production", "1")
    url = "http://ci/p/_build/results?buildId=7"
    code, out = main(registry, capsys, "--target", "acme:/eu", "--stage", "Production", "--run-url", url)
    assert code == 0, out
    assert out[:4] == ["deploying m version 1 to acme:/eu", "no deployment m on the target yet: creating it",
                       "deployment m is created (models:/m/1, cpu 1, memory 2G)",
                       "m version 1 serves at https://acme.example/m/score"]  # fmt: skip
    assert out[4].startswith("model CD steps: find the version ")
    assert registry.client.get_model_version(MODEL, "1").tags == {
        "scoring_uri": "https://acme.example/m/score", "deploy_target": "acme", "deploy_run_url": url,
    }  # fmt: skip

    code, out = main(registry, capsys, "--target", "acme:/eu", "--version", "2", "--cpu", "0.5", "--memory", "1.5")
    assert code == 0, out
    assert "deployment m is updated (models:/m/2, cpu 0.5, memory 1.5G)" in out
    assert acme.calls == [("create", "models:/m/1", {"cpu": "1", "memory": "2G"}),
                          ("update", "models:/m/2", {"cpu": "0.5", "memory": "1.5G"})]  # fmt: skip
    assert registry.client.get_model_version(MODEL, "2").tags == {
        "scoring_uri": "https://acme.example/m/score", "deploy_target": "acme",
    }  # fmt: skip


def test_model_cd_errors_are_one_line_with_an_exit_code(
    registry: Registry, acme: AcmeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    acme.fail = "quota exceeded in eu: ask for more cores"
    code, out = main(registry, capsys, "--target", "acme:/eu", "--version", "1")
    assert code == 1
    assert out[-1] == ("##vso[task.logissue type=error]deploying m version 1 to acme:/eu failed: quota exceeded in eu: "
                       "ask for more cores")  # fmt: skip
    code, out = main(registry, capsys, "--target", "acme:/eu", "--stage", "staging")
    assert (code, out) == (registry.module.NO_VERSION, [
        "##vso[task.logissue type=error]no version of m has the alias staging: give a version, or promote one "
        "(model CI)"])  # fmt: skip
    code, out = main(registry, capsys, "--target", "nosuch:/x", "--version", "1")
    assert code == 1 and out[-1].startswith("##vso[task.logissue type=error]deploying m version 1 to nosuch:/x "
                                            "failed: No plugin found for managing model deployments to ")


# -- Databricks: serving endpoints instead of deployments -------------------------------------------------------
class FakeServingEndpoints:
    """Stands in for a Databricks workspace's serving-endpoints REST API (which this machine cannot reach): a real
    HTTP server on loopback keeping the endpoints created and the requests made."""

    def __init__(self) -> None:
        endpoints: dict[str, dict[str, Any]] = {}
        requests: list[tuple[str, str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _request(self) -> tuple[list[str], Any]:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size)) if size else None
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["api", "2.0", "serving-endpoints"]:
                    requests.append((self.command, "/".join(parts[3:]), body))
                    assert self.headers["Authorization"] == "Bearer dapi-test"
                return parts, body

            def do_GET(self) -> None:
                parts, _ = self._request()
                name = parts[3] if len(parts) == 4 else ""
                if name in endpoints:
                    self._answer(200, endpoints[name])
                else:  # /.well-known/databricks-config too: the SDK then uses the given host and token
                    self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})

            def do_POST(self) -> None:
                _, body = self._request()
                endpoints[body["name"]] = {"name": body["name"], "config": body["config"]}
                self._answer(200, endpoints[body["name"]])

            def do_PUT(self) -> None:
                parts, body = self._request()
                endpoints[parts[3]]["config"] = body
                self._answer(200, endpoints[parts[3]])

            def log_message(self, *args: object) -> None:
                pass

        self.requests = requests
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_model_cd_on_databricks_creates_then_updates_the_serving_endpoint(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = FakeServingEndpoints()
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test")
    try:
        code, out = main(registry, capsys, "--target", "databricks", "--version", "1")
        assert code == 0, out
        assert "serving endpoint m is created (models:/m/1, workload Small)" in out
        code, out = main(registry, capsys, "--target", "databricks", "--version", "2", "--cpu", "8")
        assert code == 0, out
        assert "serving endpoint m is updated (models:/m/2, workload Medium)" in out
    finally:
        workspace.close()
    served = [{"entity_name": MODEL, "entity_version": v, "workload_size": size, "scale_to_zero_enabled": True}
              for v, size in (("1", "Small"), ("2", "Medium"))]  # fmt: skip
    assert workspace.requests == [
        ("GET", MODEL, None),
        ("POST", "", {"name": MODEL, "config": {"served_entities": [served[0]]}}),
        ("GET", MODEL, None),
        ("PUT", f"{MODEL}/config", {"served_entities": [served[1]]}),
    ]
    scoring_uri = f"{workspace.url}/serving-endpoints/{MODEL}/invocations"
    assert f"m version 2 serves at {scoring_uri}" in out
    assert registry.client.get_model_version(MODEL, "2").tags == {"scoring_uri": scoring_uri,
                                                                  "deploy_target": "databricks"}  # fmt: skip
