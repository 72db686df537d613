"""MLflow's deployments target `mlyard`: the real `mlflow deployments` CLI (MLflow finds the plugin through its
entry point) against a real server, real model versions and real scoring servers; and the target's parsing
rules (URI, token, -C options, model URIs) without a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from mlflow.deployments import get_deploy_client
from mlflow.deployments.cli import commands as mlflow_deployments_commands

from mlyard.deployments_plugin import MlyardDeploymentClient, run_local, target_help
from mlyard.deployments_plugin.config import DeployConfig, ModelRef, parse_config, parse_model_uri
from mlyard.deployments_plugin.errors import TargetError
from mlyard.deployments_plugin.target import Target, parse_target
from tests.conftest import TLS, Server
from tests.deployments.streams import RequestStream
from tests.registry.conftest import ROWS, Logged, register_versions

MODEL = "plugin-model"
BODY = {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}}


def mlflow_cli(srv: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`mlflow deployments ARGS` in a subprocess, with the server's URL and token in the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLYARD_", "MLFLOW_"))}
    env.update({"MLYARD_HOME": str(srv.home), "MLYARD_TOKEN": srv.token})
    proc = subprocess.run([sys.executable, "-m", "mlflow", "deployments", *args], env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"mlflow deployments {command} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def mlflow_cli_in_process(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The same `mlflow deployments ARGS` command (MLflow's click group) run in this process: a `python -m mlflow`
    process imports MLflow again (seconds of CPU each). An exception that would reach the interpreter (a traceback
    on the process's stderr) is appended to `stderr` as the interpreter would print it, with exit code 1."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("MLYARD_", "MLFLOW_"))}
    env.update({"MLYARD_HOME": str(srv.home), "MLYARD_TOKEN": srv.token})
    result = CliRunner().invoke(mlflow_deployments_commands, list(args), env=env, prog_name="mlflow deployments")
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(["mlflow", "deployments", *args], result.exit_code, result.stdout, stderr)


@pytest.fixture(scope="module")
def logged(server: Server) -> list[Logged]:
    """Three versions of MODEL in the server's dev registry, each predicting differently on ROWS."""
    with server.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    return register_versions(uri, MODEL)


@pytest.fixture
def target(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The target URI of the server's dev environment, with its token in MLYARD_TOKEN for in-process clients."""
    monkeypatch.setenv("MLYARD_TOKEN", server.token)
    monkeypatch.setenv("MLYARD_HOME", str(server.home))
    yield f"mlyard+http://127.0.0.1:{server.port}/dev"


@pytest.mark.slow
def test_create_predict_update_get_list_delete_with_the_mlflow_cli(
    server: Server, logged: list[Logged], target: str, tmp_path: Path
) -> None:
    # The real `mlflow` command in a process of its own: MLflow finds the plugin through its entry point. The later
    # commands run the same click commands in this process (a new process costs seconds of imports each).
    out = mlflow_cli(server, "create", "-t", target, "--name", MODEL, "-m", f"models:/{MODEL}/1",
                     "-C", "cpu=1", "-C", "memory=2G")  # fmt: skip
    assert f"python_function deployment {MODEL} is created" in out.stdout
    client = get_deploy_client(target)
    assert isinstance(client, MlyardDeploymentClient)
    found = client.get_deployment(MODEL)
    assert (found["name"], found["version"], found["state"], found["cpu"], found["memory"]) == (
        MODEL, "1", "healthy", 1.0, 2.0)  # fmt: skip

    with pytest.raises(TargetError) as caught:
        client.create_deployment(MODEL, f"models:/{MODEL}/2")
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert f"deployment '{MODEL}' already exists (version 1, healthy): change it with `mlflow deployments update" \
        in caught.value.message

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"a": a, "b": b} for a, b in ROWS]))
    predicted = mlflow_cli_in_process(server, "predict", "-t", target, "--name", MODEL, "-I", str(rows),
                                      "-O", str(tmp_path / "out.json"))  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == {"predictions": logged[0].predictions}

    # update to version 2 under a stream of requests, each on a new connection: none fails
    stream = RequestStream(found["scoring_uri"], BODY)
    with stream:
        updated = mlflow_cli_in_process(server, "update", "-t", target, "--name", MODEL, "-m", f"models:/{MODEL}/2",
                                        "-C", "memory=1536M")  # fmt: skip
        assert updated.returncode == 0, updated.stderr
        stream.wait_for(logged[1].predictions)
    assert stream.failures == []
    assert stream.seen[0] == logged[0].predictions and stream.seen[-1] == logged[1].predictions
    after = client.get_deployment(MODEL)
    assert (after["version"], after["scoring_uri"], after["cpu"], after["memory"]) == (
        "2", found["scoring_uri"], 1.0, 1.5)  # fmt: skip
    assert client.predict(MODEL, {"dataframe_records": [{"a": a, "b": b} for a, b in ROWS]}) == {
        "predictions": logged[1].predictions}  # fmt: skip

    listed = client.list_deployments()  # what `mlflow deployments list` prints (each CLI call costs seconds)
    assert [(d["name"], d["version"], d["flavor"], d["scoring_uri"]) for d in listed] == [
        (MODEL, "2", "python_function", found["scoring_uri"])]  # fmt: skip
    endpoint = client.get_endpoint(MODEL)
    assert (endpoint["scoring_uri"], endpoint["version"]) == (found["scoring_uri"], "2")
    assert [e["name"] for e in client.list_endpoints()] == [MODEL]

    client.delete_deployment(MODEL)  # what `mlflow deployments delete` calls (each CLI call costs seconds)
    with pytest.raises(httpx.ConnectError):
        httpx.get(found["url"] + "/ping", timeout=5, verify=TLS)
    missing = mlflow_cli_in_process(server, "get", "-t", target, "--name", MODEL)
    assert (missing.returncode, "Traceback" in missing.stderr) == (1, False), missing.stderr
    assert f"Error: mlyard target {target} (environment dev of http://127.0.0.1:{server.port}): no deployment " \
           f"named '{MODEL}'; create it with `mlflow deployments create -t {target}" in missing.stderr
    client.delete_deployment(MODEL)  # deleting what is gone is no error (MLflow's contract)
    assert client.list_deployments() == []


@pytest.mark.slow
def test_errors_name_the_target_and_what_to_do(server: Server, logged: list[Logged], target: str) -> None:
    client = get_deploy_client(target)
    cases = [
        (lambda: client.create_deployment("other", f"models:/{MODEL}/1"), "INVALID_PARAMETER_VALUE",
         f"deployment name 'other' is not the model's name '{MODEL}' (models:/{MODEL}/1): mlyard serves one "
         f"deployment per model and environment, named after the model; use --name {MODEL}"),
        (lambda: client.create_deployment(MODEL, f"models:/{MODEL}/9"), "RESOURCE_DOES_NOT_EXIST",
         f"mlyard target {target} (environment dev of {server.url}): creating deployment '{MODEL}': "
         f"model '{MODEL}' has no version 9 (versions: 1, 2, 3)"),
        (lambda: client.create_deployment(MODEL, f"models:/{MODEL}@champion"), "RESOURCE_DOES_NOT_EXIST",
         f"model '{MODEL}' has no alias 'champion' in environment dev (aliases: none)"),
        (lambda: client.create_deployment(MODEL, f"models:/{MODEL}/1", config={"cpu": "512"}),
         "INVALID_PARAMETER_VALUE", "cpu=512 needs 512 cores; the local target has"),
        (lambda: client.update_deployment(MODEL, f"models:/{MODEL}/2"), "RESOURCE_DOES_NOT_EXIST",
         f"no deployment named '{MODEL}'; create it with `mlflow deployments create -t {target} --name {MODEL}"),
        (lambda: client.predict(MODEL, BODY), "RESOURCE_DOES_NOT_EXIST", f"no deployment named '{MODEL}'"),
        (lambda: get_deploy_client(f"mlyard+http://127.0.0.1:{server.port}/nope").list_deployments(),
         "RESOURCE_DOES_NOT_EXIST", "listing deployments: environment 'nope' not found; existing environments: "),
        (lambda: client.create_endpoint(MODEL), "INVALID_PARAMETER_VALUE",
         f"an mlyard endpoint comes with its deployment: `mlflow deployments create -t {target} --name {MODEL}"),
        (lambda: client.get_deployment(MODEL, endpoint="other"), "INVALID_PARAMETER_VALUE",
         f"endpoint 'other' does not hold deployment '{MODEL}'"),
        (lambda: run_local(MODEL, f"models:/{MODEL}/1", config={"port": "http"}), "INVALID_PARAMETER_VALUE",
         "invalid config port='http': use a port number, e.g. -C port=5000"),
    ]  # fmt: skip
    for call, code, message in cases:
        with pytest.raises(TargetError) as caught:
            call()
        assert (caught.value.error_code, message in caught.value.message) == (code, True), caught.value.message


@pytest.mark.slow
def test_a_bad_token_is_refused_with_where_to_set_it(server: Server, target: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MLYARD_TOKEN", "not-a-token")
    with pytest.raises(TargetError) as caught:
        get_deploy_client(target).list_deployments()
    assert caught.value.error_code == "UNAUTHENTICATED" and "MLYARD_TOKEN" in caught.value.message


# -- the target's rules, without a server ---------------------------------------------------------------
def test_mlflow_finds_the_plugin_for_each_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLYARD_HOME", str(tmp_path))
    for uri in ("mlyard", "mlyard:/test", "mlyard+http://h:1/dev", "mlyard+https://h/prod"):
        assert isinstance(get_deploy_client(uri), MlyardDeploymentClient), uri
    assert "mlyard+http://HOST:PORT[/PREFIX]/ENV" in target_help() and "-C port=5000" in target_help()


def test_target_uris(tmp_path: Path) -> None:
    (tmp_path / "cli.json").write_text(json.dumps({"url": "http://cli:8080", "token": "cli-token"}))
    home = {"MLYARD_HOME": str(tmp_path)}
    tracking = {"MLFLOW_TRACKING_URI": "http://h:1/mlflow/dev", "MLFLOW_TRACKING_TOKEN": "tracking-token"}
    cases = [
        ("mlyard", home, Target("mlyard", "http://cli:8080", "cli-token", "dev")),
        ("mlyard:/test", home, Target("mlyard:/test", "http://cli:8080", "cli-token", "test")),
        ("mlyard:/prod", {**home, "MLYARD_URL": "http://u:1", "MLYARD_TOKEN": "t"},
         Target("mlyard:/prod", "http://u:1", "t", "prod")),
        # the CLI's server (MLYARD_URL overrides the config's URL) gets the CLI's token, as the mlyard CLI does
        ("mlyard:/dev", {**home, "MLYARD_URL": "http://u:1"}, Target("mlyard:/dev", "http://u:1", "cli-token", "dev")),
        ("mlyard+http://h:1/dev", {**home, **tracking},
         Target("mlyard+http://h:1/dev", "http://h:1", "tracking-token", "dev")),
        ("mlyard+http://other:1/dev", {**home, **tracking}, Target("mlyard+http://other:1/dev", "http://other:1", "",
                                                                   "dev")),
        ("mlyard+https://h/ml/yard/prod", {**home, "MLYARD_TOKEN": "t"},
         Target("mlyard+https://h/ml/yard/prod", "https://h/ml/yard", "t", "prod")),
        ("mlyard+http://cli:8080", home, Target("mlyard+http://cli:8080", "http://cli:8080", "cli-token", "dev")),
    ]  # fmt: skip
    for uri, environ, expected in cases:
        assert parse_target(uri, environ) == expected, uri


def test_bad_target_uris_say_which_forms_work(tmp_path: Path) -> None:
    environ = {"MLYARD_HOME": str(tmp_path)}
    cases = [
        ("mlyard+http://user:secret@h:1/dev", "no user, password, query or fragment; put the token in MLYARD_TOKEN"),
        ("mlyard://h:1/dev", "mlyard:/ENV names no host; use mlyard+http://HOST:PORT/ENV"),
        ("mlyard:/Not An Env", "invalid environment name 'Not An Env'"),
        ("mlyard+ftp://h/dev", "the mlyard target takes mlyard:, mlyard+http:, mlyard+https:"),
        ("mlyard:/" + "x" * 3000, "invalid target URI"),
    ]
    for uri, message in cases:
        with pytest.raises(TargetError) as caught:
            parse_target(uri, environ)
        assert message in caught.value.message and caught.value.error_code == "INVALID_PARAMETER_VALUE", uri


def test_config_options() -> None:
    assert parse_config({}) == DeployConfig()
    assert parse_config({"cpu": "500m", "memory": "512Mi"}) == DeployConfig(cpu=0.5, memory=0.5)
    assert parse_config({"cpu": 2, "memory": "2G"}) == DeployConfig(cpu=2.0, memory=2.0)
    assert parse_config({"memory": "1.5"}) == DeployConfig(memory=1.5)
    cases = [
        ({"replicas": "2"}, "unknown config 'replicas' for the mlyard target: it takes -C cpu=..., -C memory=..."),
        ({"memory": "2X"}, "invalid config memory='2X': use a number above 0, e.g. 2, 2G, 512M or 1.5Gi"),
        ({"cpu": "0"}, "invalid config cpu='0': use a number above 0, e.g. 1, 0.5 or 500m"),
        ({"cpu": "9" * 100}, "invalid config cpu="),
    ]
    for config, message in cases:
        with pytest.raises(TargetError) as caught:
            parse_config(config)
        assert message in caught.value.message


def test_model_uris() -> None:
    assert parse_model_uri("models:/m/3") == ModelRef("models:/m/3", "m", version="3")
    assert parse_model_uri("models:/m/production") == ModelRef("models:/m/production", "m", stage="Production")
    assert parse_model_uri("models:/m@champion") == ModelRef("models:/m@champion", "m", alias="champion")
    assert parse_model_uri("models:/m/latest") == ModelRef("models:/m/latest", "m", latest=True)
    for uri, message in [
        ("runs:/abc/model", "the mlyard target deploys registered model versions"),
        ("models:/m/Archived", "'Archived' is not a version number, Production, Staging or latest"),
        ("models:/m", "invalid model URI 'models:/m'"),
    ]:
        with pytest.raises(TargetError) as caught:
            parse_model_uri(uri)
        assert message in caught.value.message
