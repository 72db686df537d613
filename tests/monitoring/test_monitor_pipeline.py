"""The done-when of issue 14, point 4: the generated project's `<repo>-monitor` pipeline, run by its daily
schedule (fired now through the admin hook `POST /api/v1/pipelines/{name}/schedules/run`, not by waiting a
day), does nothing while the deployment's traffic looks like the training data, and once the traffic is
shifted past mlops/monitoring.yml's drift threshold it alerts the environment's webhook (a fake of
Slack's) and retrains: a training job in the workspace registers a new version, marks it `staging`, and
the completion trigger runs model CI, which promotes it to Production.

Everything the pipelines do goes through the project's own scripts and the variable group (portable); the
test only plays the data scientist (train v1 in the workspace, as quickstart does, and deploy it) and the
users (the traffic).
"""

from __future__ import annotations

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

from tests.ci.helpers import job, logs, runs_of, wait_state
from tests.conftest import Git, Server, start_server
from tests.fakes import FakeSlackWebhook
from tests.models.test_model_ci import laptop, newest_run, permitted

pytestmark = [pytest.mark.slow, pytest.mark.long]  # a project, two trainings, three pipelines: ~2-3 min
MODEL = "watched-model"
PACKAGE = "watched_model"
REQUESTS, ROWS = 100, 5  # per phase: min_requests of mlops/monitoring.yml is 100

TRAINING_ROWS = f"""
import json
from {PACKAGE}.data import load_split
from {PACKAGE}.features import build_features
print(build_features(load_split().x_train).to_json(orient="split", index=False))
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("monitor-pipeline"))
    yield server
    server.stop()


@pytest.fixture
def slack(srv: Server) -> Iterator[FakeSlackWebhook]:
    fake = FakeSlackWebhook()
    srv.cli("environments", "set", "dev", "--notify-webhook", fake.url)
    yield fake
    fake.close()


def versions(server: Server) -> dict[str, dict]:
    doc = json.loads(server.cli("models", "show", MODEL, "--json").stdout)
    return {str(v["version"]): v for v in doc["versions"]}


def fire(server: Server) -> dict:
    """The daily schedule of the monitor pipeline, now."""
    with server.client() as api:
        answer = api.post(f"/api/v1/pipelines/{MODEL}-monitor/schedules/run")
    assert answer.status_code == 200, answer.text
    (fired,) = answer.json()["fires"]
    assert (fired["schedule"], fired["branch"], fired["skipped"]) == (
        "Daily drift and quality check", "refs/heads/master", "")  # fmt: skip
    run = wait_state(server, fired["run_id"], {"waiting", "running", "succeeded", "failed"}, timeout=60)
    assert run["reason"] == "Schedule"
    return run


def databricks(server: Server, work: Path, *args: str) -> str:
    """Run a project script on "another machine" with the group's workspace URL and MLflow URL, and a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLYARD_", "DATABRICKS_"))}
    env.update(MLFLOW_TRACKING_URI=f"{server.url}/mlflow/dev", MLFLOW_TRACKING_TOKEN=server.token,
               DATABRICKS_HOST=f"{server.url}/databricks/dev", DATABRICKS_TOKEN=server.token, PYTHONPATH="src",
               PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    proc = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def send_traffic(url: str, columns: list[str], rows: np.ndarray, rng: np.random.Generator) -> None:
    for _ in range(REQUESTS):
        batch = rows[rng.integers(0, len(rows), ROWS)]
        body = {"dataframe_split": {"columns": columns, "data": batch.tolist()}}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text


def wait_written(url: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if int(httpx.get(f"{url}/health", timeout=10).json()["inference_log"]["written"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} requests logged")


def test_the_scheduled_monitor_retrains_past_the_drift_threshold_only(
    srv: Server, git: Git, slack: FakeSlackWebhook
) -> None:
    server = srv
    created = server.cli("create", MODEL, "--env", "dev", "--demo", "--follow", "--json").stdout
    out = json.loads(created[created.index("{\n"):])
    assert f"{MODEL}-monitor" in out["pipelines"]
    shown = json.loads(server.cli("pipelines", "show", f"{MODEL}-monitor", "--json").stdout)
    assert shown["folder"] == MODEL and shown["yaml_path"] == "mlops/pipelines/monitor.yml"
    deployed = permitted(server, newest_run(server, f"{MODEL}-deploy-code", 1)["id"])
    assert deployed["state"] == "succeeded", logs(server, deployed["id"])
    first_ci = permitted(server, newest_run(server, f"{MODEL}-promote-model", 1)["id"])
    assert first_ci["state"] == "succeededWithIssues"

    # v1, trained in the workspace by the project's own retrain.py (its run holds the baseline profile), put
    # in Production and deployed
    git("clone", "-q", server.remote(MODEL), "w")
    work = git.cwd / "w"
    assert databricks(server, work, "mlops/retrain.py").splitlines()[-1] == "1"
    laptop(server, work, "mlops/registry.py", "set-alias", "--version", "1", "--alias", "production")
    url = json.loads(server.cli("deployments", "create", MODEL, "--env", "dev", "--version", "1", "--json").stdout)[
        "url"]  # fmt: skip
    training = json.loads(laptop(server, work, "-c", TRAINING_ROWS))
    columns, rows = training["columns"], np.asarray(training["data"], dtype=np.float64)
    rng = np.random.default_rng(7)

    # traffic like the training data: the scheduled check is within the thresholds and retrains nothing
    send_traffic(url, columns, rows, rng)
    wait_written(url, REQUESTS)
    calm = permitted(server, fire(server)["id"])  # its first run waits for the variable group, as model CI's
    assert calm["state"] == "succeeded", logs(server, calm["id"])
    assert job(calm, "Check")["state"] == "succeeded" and calm["stages"][1]["state"] == "skipped"
    assert "within the thresholds of mlops/monitoring.yml" in logs(server, calm["id"])
    assert slack.messages == [] and list(versions(server)) == ["1"]

    # shifted traffic (three features tripled): drift past the threshold -> alert, retrain, model CI promotes v2
    shifted = rows.copy()
    shifted[:, :3] *= 3
    send_traffic(url, columns, shifted, rng)
    wait_written(url, 2 * REQUESTS)
    drift = wait_state(server, fire(server)["id"], timeout=600)
    text = logs(server, drift["id"])
    assert drift["state"] == "succeeded", text
    assert [s["state"] for s in drift["stages"]] == ["succeeded", "succeeded"]
    assert "drifted feature(s), more than 0" in text and "version 2 is in Staging" in text
    ci = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 2, timeout=60)["id"], timeout=600)
    assert ci["state"] == "succeeded", logs(server, ci["id"])
    assert (ci["reason"], ci["source_version"]) == ("ResourceTrigger", drift["source_version"])
    after = versions(server)
    assert after["2"]["stage"] == "Production" and after["2"]["tags"]["test_status"] == "passed"
    assert after["1"]["stage"] != "Production"
    # the calm check triggered nothing: model CI ran on the push and after the retraining only
    assert [r["reason"] for r in runs_of(server, f"{MODEL}-promote-model")] == ["ResourceTrigger", "IndividualCI"]
    alert, promoted = slack.messages
    assert alert["text"].startswith(f":warning: {MODEL} in dev: past the monitoring thresholds: ")
    assert "retraining queued" in alert["text"]
    assert promoted["text"].startswith(f":white_check_mark: {MODEL} version 2 promoted to Production")
