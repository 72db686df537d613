"""`mlyard models ...` against a real server whose dev registry holds real MLflow model versions."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Server, mlyard
from tests.registry.conftest import log_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(server: Server) -> str:
    """Three versions of `churn` in the server's dev registry (logged by this process, as a job would)."""
    from mlflow import MlflowClient

    from mlyard.registry import init_store

    with server.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    init_store(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("churn")
    for item in log_models(uri):
        client.create_model_version("churn", item.artifact_location, run_id=item.run_id)
    return "churn"


def test_list_show_stage_history_and_rollback(server: Server, registered: str) -> None:
    listed = json.loads(server.cli("models", "list", "--env", "dev", "--json").stdout)
    churn = next(m for m in listed if m["name"] == "churn")  # other tests register models in dev too
    assert str(churn["latest_version"]) == "3" and churn["environment"] == "dev"
    server.cli("models", "stage", "churn", "1", "Production")
    out = server.cli("models", "stage", "churn", "2", "staging")
    assert "churn version 2" in out.stdout
    shown = json.loads(server.cli("models", "show", "churn", "--json").stdout)
    stages = {str(v["version"]): v["stage"] for v in shown["versions"]}
    assert stages == {"1": "Production", "2": "Staging", "3": "None"}
    server.cli("models", "stage", "churn", "2", "Production", "--reason", "better")
    shown = json.loads(server.cli("models", "show", "churn", "--json").stdout)
    stages = {str(v["version"]): v["stage"] for v in shown["versions"]}
    assert stages["2"] == "Production" and stages["1"] == "Archived"
    history = json.loads(server.cli("models", "history", "churn", "--json").stdout)
    assert [(str(h["version"]), h["to"]) for h in history][-1] == ("2", "Production")
    assert history[-1]["by"] == "admin" and history[-1]["reason"] == "better"
    back = json.loads(server.cli("models", "rollback", "churn", "--json").stdout)
    assert str(back["version"]) == "1"
    shown = json.loads(server.cli("models", "show", "churn", "--json").stdout)
    assert {str(v["version"]): v["stage"] for v in shown["versions"]}["1"] == "Production"


def test_errors_are_clear(server: Server, registered: str) -> None:
    missing = server.cli("models", "show", "nope", check=False)
    assert missing.returncode == 3 and "nope" in missing.stderr
    bad = server.cli("models", "stage", "churn", "1", "Prod", check=False)
    assert bad.returncode == 2 and "Staging" in bad.stderr and "Production" in bad.stderr
    no_version = server.cli("models", "stage", "churn", "9", "Staging", check=False)
    assert no_version.returncode == 3 and "no version 9" in no_version.stderr
    unknown_env = server.cli("models", "list", "--env", "qa", check=False)
    assert unknown_env.returncode == 3 and "environment 'qa' not found" in unknown_env.stderr
    for out in (missing, bad, no_version, unknown_env):
        assert "Traceback" not in out.stderr and "FutureWarning" not in out.stderr


def test_version_tag_and_direct_mode(server: Server, registered: str) -> None:
    with server.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    server.cli("models", "stage", "churn", "3", "Staging")
    assert server.cli("models", "version", "churn", "--stage", "Staging").stdout.strip() == "3"
    found = json.loads(server.cli("models", "version", "churn", "--stage", "staging", "--json").stdout)
    assert str(found["version"]) == "3" and "staging" in found["aliases"]
    server.cli("models", "tag", "churn", "3", "--tag", "git_commit=abc", "--tag", "test_status=passed")
    # The same registry used directly, as a pipeline step with the environment's connection does.
    direct = server.cli("models", "show", "churn", "--tracking-uri", uri, "--json", token="myd_not-needed")
    version = next(v for v in json.loads(direct.stdout)["versions"] if str(v["version"]) == "3")
    assert version["tags"]["git_commit"] == "abc" and version["tags"]["test_status"] == "passed"
    server.cli("models", "stage", "churn", "3", "Production", "--tracking-uri", uri, "--reason", "model CI")
    history = json.loads(server.cli("models", "history", "churn", "--json").stdout)
    assert (str(history[-1]["version"]), history[-1]["to"], history[-1]["reason"]) == ("3", "Production", "model CI")
    empty = server.cli("models", "version", "churn", "--stage", "Staging", check=False)
    assert empty.returncode == 3 and "model 'churn' has no version in Staging" in empty.stderr


def test_show_is_readable_at_80_columns(server: Server, registered: str) -> None:
    """A header block, the versions, their key metrics, the last stage changes: no line wider than 80
    columns, no Python repr, times to the second (tags as long as model CI's)."""
    long_tags = ["--tag", f"commit={'a' * 40}", "--tag", f"run_url={server.url}/mlyard/_build/results?buildId=12345"]
    server.cli("models", "tag", "churn", "2", *long_tags)
    server.cli("models", "stage", "churn", "2", "Staging", "--reason", "candidate from the nightly training")
    env = {"MLYARD_URL": server.url, "MLYARD_TOKEN": server.token, "COLUMNS": "80"}
    out = mlyard("models", "show", "churn", home=server.home, env=env).stdout
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "{" not in out and "[" not in out and "None" not in out, out
    head = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert head["model"] == "churn" and head["staging"] == "version 2" and head["registry"] == "dev"
    versions = out.split("\n\n")[1].splitlines()
    assert versions[0] == "versions" and versions[1].split() == ["VERSION", "STAGE", "RUN", "CREATED"]
    assert versions[3].split()[:2] == ["2", "Staging"] and re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", versions[3])
    metrics = out.split("\n\n")[2].splitlines()
    assert metrics[1].split() == ["VERSION", "ACCURACY"] and metrics[2].split() == ["3", "0.9"]
    changes = out.split("\n\n")[3].splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d   version 2   Archived -> Staging   by admin$", changes[1])
    assert changes[2] == "    candidate from the nightly training"
