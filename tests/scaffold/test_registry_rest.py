"""`mlops/registry.py`'s `find` over the MLflow registry's REST API without MLflow (find_over_rest): model CI on a
push with nothing in Staging ends without importing MLflow. A fake registry on loopback gives each answer MLflow's
server gives (a real one answers in tests/models/test_model_ci.py: nothing to promote, then a version in Staging);
whatever it cannot read clearly is left to MLflow (CannotTell)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.scaffold.conftest import run_python

ALIAS = "GET /api/2.0/mlflow/registered-models/alias"
LATEST = "POST /api/2.0/mlflow/registered-models/get-latest-versions"
MISSING_MODEL = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=m not found"})
# What else tells MLflow's client (and `find_over_rest`) where and how to reach the registry: unset in these tests.
CLIENT_VARIABLES = ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH")  # fmt: skip
MISSING_ALIAS = (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias staging not found."})


class FakeRegistry:
    """MLflow's registry REST API as far as `find` asks it: `answers` maps "METHOD /path" to (status, body: JSON, or
    bytes sent as they are); each request is kept as (what, query or JSON body, Authorization header)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, Any, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                path, _, query = self.path.partition("?")
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size)) if size else query
                what = f"{self.command} {path.removeprefix('/mlflow/dev')}"
                fake.requests.append((what, body, self.headers.get("Authorization", "")))
                status, answer = fake.answers.get(what, (404, b"no such route"))
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/mlflow/dev"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    for name in CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k")
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def registry(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo project's mlops/registry.py, imported from a copy (the shared project must get no __pycache__)."""
    script = tmp_path_factory.mktemp("rest-script") / "registry.py"
    shutil.copyfile(demo_project / "mlops/registry.py", script)
    spec = importlib.util.spec_from_file_location("project_registry_rest", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_alias_then_the_legacy_stage_then_none(registry: Any, fake: FakeRegistry) -> None:
    fake.answers[ALIAS] = (200, {"model_version": {"name": "m", "version": "7", "aliases": ["staging"]}})
    assert registry.find_over_rest("m", "staging") == "7"
    assert fake.requests == [(ALIAS, "name=m&alias=staging", "Bearer t0k")]

    fake.answers[ALIAS] = MISSING_ALIAS  # a registry that still uses stages only
    fake.answers[LATEST] = (200, {"model_versions": [{"name": "m", "version": "3", "current_stage": "Production"}]})
    assert registry.find_over_rest("m", "production") == "3"
    assert fake.requests[-1] == (LATEST, {"name": "m", "stages": ["Production"]}, "Bearer t0k")

    fake.answers[LATEST] = (200, {})  # the model has no version in that stage
    assert registry.find_over_rest("m", "staging") is None
    fake.answers[ALIAS] = fake.answers[LATEST] = MISSING_MODEL  # no such model yet (the first push)
    assert registry.find_over_rest("m", "staging") is None
    assert registry.find("m", "staging") is None  # `find` itself: the REST answer, MLflow not asked


def test_mlflows_client_authentication(registry: Any, fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.answers[ALIAS] = (200, {"model_version": {"version": "1"}})
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert registry.find_over_rest("m", "staging") == "1"
    assert fake.requests[-1][2] == "Basic YW5uOnMzY3JldA=="  # ann:s3cret
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", fake.uri)  # the registry's URI first, as MLflow's client does
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/nothing-here")
    assert registry.find_over_rest("m", "staging") == "1"


@pytest.mark.parametrize(
    "answer",
    [(503, {"error_code": "TEMPORARILY_UNAVAILABLE"}), (200, b"<html>a proxy's page</html>"), (200, {"other": 1}),
     (401, {"error_code": "UNAUTHENTICATED"}), (400, {"error_code": "BAD_REQUEST"})],
    ids=["503", "not-json", "not-mlflow", "401", "other-400"],
)  # fmt: skip
def test_an_unclear_answer_is_left_to_mlflow(registry: Any, fake: FakeRegistry, answer: tuple[int, Any]) -> None:
    """MLflow then asks again (its retries) or raises what the registry said: nothing is read as 'no version'."""
    fake.answers[ALIAS] = answer
    with pytest.raises(registry.CannotTell):
        registry.find_over_rest("m", "staging")
    if answer[1] == {"other": 1}:  # of get-latest-versions: no `model_versions`, which MLflow reads as none too
        return
    fake.answers[ALIAS] = MISSING_ALIAS
    fake.answers[LATEST] = answer
    with pytest.raises(registry.CannotTell):
        registry.find_over_rest("m", "staging")


def test_what_is_no_plain_http_registry_is_left_to_mlflow(
    registry: Any, fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.answers[ALIAS] = (200, {"model_version": {"version": "1"}})
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")  # MLflow's own TLS options
    with pytest.raises(registry.CannotTell):
        registry.find_over_rest("m", "staging")
    monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS")
    for uri in (f"sqlite:///{tmp_path / 'mlflow.db'}", "databricks", "databricks-uc", "http://127.0.0.1:9/closed"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(registry.CannotTell):
            registry.find_over_rest("m", "staging")
    assert len(fake.requests) == 0


def test_model_ci_with_nothing_in_staging_does_not_import_mlflow(demo_project: Path, fake: FakeRegistry,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    fake.answers[ALIAS] = fake.answers[LATEST] = MISSING_MODEL
    run = ("import atexit, runpy, sys; atexit.register(lambda: print('mlflow imported:', 'mlflow' in sys.modules)); "
           f"sys.argv = ['mlops/registry.py', 'ci', '--junitxml', {str(tmp_path / 'model.xml')!r}]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")  # fmt: skip
    proc = run_python(demo_project, "-c", run, env={"MLFLOW_TRACKING_URI": fake.uri, "MLFLOW_TRACKING_TOKEN": "t0k"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "##vso[task.logissue type=warning]no model version in Staging: nothing to promote" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "mlflow imported: False"
    assert [what for what, _, _ in fake.requests] == [ALIAS, LATEST]


@pytest.mark.slow
def test_a_real_mlflow_registry_gives_the_same_answers_as_mlflows_client(
    registry: Any, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers `find_over_rest` reads are those of a real MLflow registry (the session server's `dev`, MLflow's
    own server behind mlyard's token check): a version by alias, an alias the model lacks and a model that does
    not exist; MLflow's client agrees. The fake above gives the answers a real registry cannot be made to give."""
    from mlflow import MlflowClient

    for name in CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    uri = f"{server.url}/mlflow/dev"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = "rest-find-model"
    run = client.create_run(client.create_experiment("rest-find"))
    client.create_registered_model(model)
    for _ in range(2):
        client.create_model_version(model, run.info.artifact_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(model, "staging", "2")

    assert client.get_model_version_by_alias(model, "staging").version == "2"
    assert registry.find_over_rest(model, "staging") == "2"
    assert registry.find_over_rest(model, "production") is None  # no such alias, no version in that stage
    assert registry.find_over_rest("rest-find-no-such-model", "staging") is None
    assert registry.find(model, "staging") == "2"
