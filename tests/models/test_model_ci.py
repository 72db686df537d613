"""The demo project's whole model loop on ONE server with remote agents only, in one project: create -> code
deployed -> model CI with nothing to promote -> a laptop trains v1 -> model CI promotes it -> model CD deploys
it -> score -> the daily monitor (fired now) does nothing on calm traffic, alerts and retrains on shifted
traffic, and model CI promotes the retrained v2 -> an impossible gate keeps v3 in Staging.

The server runs no agent of its own (`--agents 0`); one `mlyard agent` process claims every job. Its steps
run in the agent's sandbox, whose temporary folder is private: the server's data directory (under the test's
temporary folder) is out of their reach, so everything goes through the standard interfaces of the
environment's variable group — databricks-sdk at `/databricks/dev`, MLflow at `/mlflow/dev`, `mlflow
deployments` on `DEPLOY_TARGET_URI`. Training happens on "the data scientist's machine" (this process), with
the same MLflow URI and a token, so the experiment `/ml_apps/<repo>` is created through the tracking server
(`mlflow-artifacts:/` artifacts); the monitor's retraining, a workspace job, logs to that same experiment
(through the tracking server with the job's own token: docs/jobs.md).

The monitor's daily schedule is fired through the admin hook `POST /api/v1/pipelines/{name}/schedules/run`
(issue 14, point 4), not by waiting a day. The test only plays the data scientist (train, stage, push, run
model CD) and the users (the traffic); the pipelines do the rest with the project's own scripts.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import ObjectType

from tests.agent.test_remote_agent import Agent, agent_token
from tests.ci.helpers import job, logs, run, runs_of, wait_state
from tests.conftest import TLS, Git, Server, start_server
from tests.fakes import FakeSlackWebhook

pytestmark = [pytest.mark.slow, pytest.mark.long]  # a project, three trainings, four pipelines
MODEL = "ci-model"
PACKAGE = "ci_model"
AGENT = "remote-flow"
REQUESTS, ROWS = 100, 5  # per traffic phase: min_requests of mlops/monitoring.yml is 100


@pytest.fixture(scope="module")
def remote_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without agents of its own, and one remote agent process."""
    tmp = tmp_path_factory.mktemp("remote-flow")
    server = start_server(tmp, "--agents", "0")
    agent = Agent(server, agent_token(server), AGENT, tmp / "agent" / "work")
    agent.work.parent.mkdir(parents=True)
    agent.start()
    yield server
    agent.kill()
    server.stop()


@pytest.fixture
def slack(remote_only: Server) -> Iterator[FakeSlackWebhook]:
    fake = FakeSlackWebhook()
    out = remote_only.cli("environments", "set", "dev", "--notify-webhook", fake.url).stdout
    assert "notification webhook set" in out
    yield fake
    fake.close()


def newest_run(server: Server, pipeline: str, count: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(server, pipeline)
        if len(runs) >= count:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"{pipeline}: fewer than {count} runs")


def permitted(server: Server, run_id: int, timeout: float = 300) -> dict:
    """Wait for the run's first-use permission request, grant it, and wait for the run to end."""
    waiting = wait_state(server, run_id, {"waiting"})
    assert "variablegroup:dev" in waiting["waiting_for"], waiting
    server.cli("runs", "permit", str(run_id))
    return wait_state(server, run_id, timeout=timeout)


def versions(server: Server) -> dict[str, dict]:
    doc = json.loads(server.cli("models", "show", MODEL, "--json").stdout)
    return {str(v["version"]): v for v in doc["versions"]}


def laptop(server: Server, work: Path, *args: str) -> str:
    """Run the project's Python on "another machine": only the server's URLs and a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLYARD_", "DATABRICKS_"))}
    env.update(MLFLOW_TRACKING_URI=f"{server.url}/mlflow/dev", MLFLOW_TRACKING_TOKEN=server.token,
               PYTHONPATH="src", PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    proc = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def train_and_stage(server: Server, work: Path, version: str) -> None:
    out = laptop(server, work, f"src/{PACKAGE}/notebooks/train.py")
    assert out.splitlines()[-1] == f"registered model: {MODEL} version {version}"
    laptop(server, work, "mlops/registry.py", "set-alias", "--version", version, "--alias", "staging")


def fire(server: Server) -> dict:
    """The daily schedule of the monitor pipeline, now."""
    with server.client() as api:
        answer = api.post(f"/api/v1/pipelines/{MODEL}-monitor/schedules/run")
    assert answer.status_code == 200, answer.text
    (fired,) = answer.json()["fires"]
    assert (fired["schedule"], fired["branch"], fired["skipped"]) == (
        "Daily drift and quality check", "refs/heads/master", "")  # fmt: skip
    started = wait_state(server, fired["run_id"], {"waiting", "running", "succeeded", "failed"}, timeout=60)
    assert started["reason"] == "Schedule"
    return started


def send_traffic(url: str, columns: list[str], rows: np.ndarray, rng: np.random.Generator) -> None:
    for _ in range(REQUESTS):
        batch = rows[rng.integers(0, len(rows), ROWS)]
        body = {"dataframe_split": {"columns": columns, "data": batch.tolist()}}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30, verify=TLS)
        assert answer.status_code == 200, answer.text
        time.sleep(0.03)  # users' pace: under the 50 requests a second the scoring server logs in full


def wait_written(url: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if int(httpx.get(f"{url}/health", timeout=10, verify=TLS).json()["inference_log"]["written"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} requests logged")


def test_the_model_loop_on_remote_agents_only(remote_only: Server, git: Git, slack: FakeSlackWebhook) -> None:
    server = remote_only
    created = server.cli("create", MODEL, "--env", "dev", "--demo", "--follow", "--json").stdout
    assert f"{MODEL}-monitor" in json.loads(created[created.index("{\n") :])["pipelines"]
    shown = json.loads(server.cli("pipelines", "show", f"{MODEL}-monitor", "--json").stdout)
    assert shown["folder"] == MODEL and shown["yaml_path"] == "mlops/pipelines/monitor.yml"
    deploy = newest_run(server, f"{MODEL}-deploy-code", 1)
    first_ci = newest_run(server, f"{MODEL}-promote-model", 1)
    deployed = permitted(server, deploy["id"])
    assert deployed["state"] == "succeeded", logs(server, deploy["id"])
    assert job(deployed, "UnitTests")["agent"] == job(deployed, "DeployCode")["agent"] == AGENT
    nothing = permitted(server, first_ci["id"])
    assert nothing["state"] == "succeededWithIssues"
    assert "no model version in Staging: nothing to promote" in logs(server, first_ci["id"])

    # the code is in the workspace, as databricks-sdk sees it
    workspace = WorkspaceClient(host=f"{server.url}/databricks/dev", token=server.token, auth_type="pat")
    notebook = workspace.workspace.get_status(f"/ml_apps/{MODEL}/master/src/{PACKAGE}/notebooks/train")
    assert notebook.object_type == ObjectType.NOTEBOOK

    # train v1 on the laptop (its run holds the baseline profile), mark it for promotion, merge: model CI
    # promotes it
    git("clone", "-q", server.remote(MODEL), "w")
    work = git.cwd / "w"
    train_and_stage(server, work, "1")
    sha = git.commit({"README.md": "release v1\n"}, "release v1", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    passed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 2)["id"], timeout=300)
    assert passed["state"] == "succeeded", logs(server, passed["id"])
    assert passed["tests"]["failed"] == 0 and passed["tests"]["passed"] >= 3
    # model CI is one process (`mlops/registry.py ci`): find the version in Staging, its model tests, the gate, tag,
    # promote (was tests/scaffold/test_model_ci_step.py, the same command run by hand on a SQLite store)
    text = logs(server, passed["id"])
    assert f"version 1 of {MODEL} is in Staging" in text and "all gates passed" in text
    assert "model CI steps: find the version in Staging" in text and f"{MODEL} version 1 is now production" in text
    assert job(passed, "PromoteModel")["agent"] == AGENT
    v1 = versions(server)["1"]
    assert v1["stage"] == "Production" and "production" in v1["aliases"]
    assert v1["tags"]["git_commit"] == sha and v1["tags"]["test_status"] == "passed"
    run_url = f"{server.url}/mlyard/_build/results?buildId={passed['id']}"
    assert v1["tags"]["git_branch"] == "refs/heads/master" and v1["tags"]["run_url"] == run_url
    assert [m["text"] for m in slack.messages] == [
        f":white_check_mark: {MODEL} version 1 promoted to Production (refs/heads/master at {sha[:10]}): {run_url}"
    ]
    assert slack.url not in text  # a secret of the group: masked

    # model CD: the Production version through `mlflow deployments`, tagged with its scoring URI; then score
    cd = permitted(server, run(server, f"{MODEL}-deploy-model")["id"])
    assert cd["state"] == "succeeded", logs(server, cd["id"])
    scoring_uri = versions(server)["1"]["tags"]["scoring_uri"]
    assert versions(server)["1"]["tags"]["deploy_run_url"] == f"{server.url}/mlyard/_build/results?buildId={cd['id']}"
    data = project_data(work)
    answer = httpx.post(scoring_uri, json=data["sample"], timeout=60, verify=TLS)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 2
    assert scoring_uri.endswith("/invocations")
    url = scoring_uri.removesuffix("/invocations")  # the deployment's scoring server (its /health too)
    training = data["training"]
    columns, rows = training["columns"], np.asarray(training["data"], dtype=np.float64)
    rng = np.random.default_rng(7)

    # traffic like the training data: the scheduled check is within the thresholds and retrains nothing
    send_traffic(url, columns, rows, rng)
    wait_written(url, REQUESTS + 1)  # and the sample above
    calm = permitted(server, fire(server)["id"])  # its first run waits for the variable group, as model CI's
    assert calm["state"] == "succeeded", logs(server, calm["id"])
    assert job(calm, "Check")["state"] == "succeeded" and calm["stages"][1]["state"] == "skipped"
    assert "within the thresholds of mlops/monitoring.yml" in logs(server, calm["id"])
    assert len(slack.messages) == 1 and list(versions(server)) == ["1"]  # no alert, no new version

    # shifted traffic (three features tripled): drift past the threshold -> alert, retrain in the workspace
    # (a job logging to the experiment the laptop created), model CI promotes v2
    shifted = rows.copy()
    shifted[:, :3] *= 3
    send_traffic(url, columns, shifted, rng)
    wait_written(url, 2 * REQUESTS + 1)
    drift = wait_state(server, fire(server)["id"], timeout=600)
    text = logs(server, drift["id"])
    assert drift["state"] == "succeeded", text
    assert [s["state"] for s in drift["stages"]] == ["succeeded", "succeeded"]
    assert "drifted feature(s), more than 0" in text and "version 2 is in Staging" in text
    ci = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 3, timeout=60)["id"], timeout=600)
    assert ci["state"] == "succeeded", logs(server, ci["id"])
    assert (ci["reason"], ci["source_version"]) == ("ResourceTrigger", drift["source_version"])
    after = versions(server)
    assert after["2"]["stage"] == "Production" and after["2"]["tags"]["test_status"] == "passed"
    assert after["1"]["stage"] != "Production"
    assert after["2"]["run_id"] != after["1"]["run_id"]
    # the calm check triggered nothing: model CI ran on the pushes and after the retraining only
    reasons = [r["reason"] for r in runs_of(server, f"{MODEL}-promote-model")]
    assert reasons == ["ResourceTrigger", "IndividualCI", "IndividualCI"]
    alert, promoted = slack.messages[1:]
    assert alert["text"].startswith(f":warning: {MODEL} in dev: past the monitoring thresholds: ")
    assert "retraining queued" in alert["text"]
    assert promoted["text"].startswith(f":white_check_mark: {MODEL} version 2 promoted to Production")

    # An impossible gate: version 3 stays in Staging and the run fails naming the metric.
    git.commit({"mlops/model-gates.yml": "metrics:\n  accuracy:\n    min: 0.9999\n"}, "impossible gate", cwd=work)
    train_and_stage(server, work, "3")
    git("push", "-q", "origin", "master", cwd=work)
    failed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 4)["id"], timeout=300)
    assert failed["state"] == "failed"
    text = logs(server, failed["id"])
    assert "model gate failed: accuracy" in text
    assert f"{MODEL} version 3 failed its model tests and the gate and stays in Staging" in text
    assert any("test_metric_meets_its_gate" in f["name"] for f in failed["tests"]["failures"]), failed["tests"]
    after = versions(server)
    assert after["3"]["stage"] == "Staging" and after["3"]["tags"]["test_status"] == "failed"
    assert after["2"]["stage"] == "Production"
    assert len(slack.messages) == 4 and slack.messages[3]["text"].startswith(
        f":x: {MODEL} version 3 failed model CI and stays in Staging"
    )
    assert "notified the webhook (200)" in text


def project_data(work: Path) -> dict:
    """A sample request (two test rows) and the training rows the traffic is drawn from, as the model's features:
    the project's own `data` and `features` modules, imported in this process (a Python of its own imports pandas
    and scikit-learn again: seconds of CPU) without bytecode, then forgotten."""
    src, writes = str(work / "src"), sys.dont_write_bytecode
    sys.path.insert(0, src)
    sys.dont_write_bytecode = True
    try:
        split = importlib.import_module(f"{PACKAGE}.data").load_split()
        build_features = importlib.import_module(f"{PACKAGE}.features").build_features
        sample = json.loads(build_features(split.x_test.head(2)).to_json(orient="split", index=False))
        training = json.loads(build_features(split.x_train).to_json(orient="split", index=False))
    finally:
        sys.path.remove(src)
        sys.dont_write_bytecode = writes
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
    return {"sample": {"dataframe_split": sample}, "training": training}
