"""Monitoring end to end against a real server: a deployed model logs its traffic, in-distribution then
shifted; labels are posted by request id; `mlyard deployments monitor --json` flags exactly the shifted
feature and reports the accuracy on the labelled rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlyard.monitoring.profile import log_profile, profile_frame
from tests.conftest import Server, start_server
from tests.registry.conftest import Logged, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.long]  # a server, three logged models, a deployment: ~40 s
MODEL = "watched"
BATCH, REQUESTS = 10, 20  # rows per request, requests per phase


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("monitor"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployed(srv: Server) -> tuple[dict, list[Logged]]:
    """Version 1 of MODEL, its run holding the baseline profile of its (uniform) training data, deployed in dev."""
    with srv.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    logged = register_versions(uri, MODEL)
    rng = np.random.default_rng(0)
    log_profile(profile_frame(pd.DataFrame({"a": rng.uniform(0, 1, 2000), "b": rng.uniform(0, 1, 2000)})),
                run_id=logged[0].run_id, tracking_uri=uri)  # fmt: skip
    found = json.loads(srv.cli("deployments", "create", MODEL, "--env", "dev", "--version", "1", "--json").stdout)
    return found, logged


def send(url: str, rows: np.ndarray, request_id: str | None = None) -> tuple[str, list]:
    headers = {"X-Request-Id": request_id} if request_id else {}
    body = {"dataframe_split": {"columns": ["a", "b"], "data": rows.tolist()}}
    answer = httpx.post(f"{url}/invocations", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"], answer.json()["predictions"]


def written(url: str) -> int:
    return int(httpx.get(f"{url}/health", timeout=10).json()["inference_log"]["written"])


def monitor(srv: Server) -> dict:
    return json.loads(srv.cli("deployments", "monitor", MODEL, "--env", "dev", "--window", "1h", "--json").stdout)


def test_traffic_drift_and_accuracy(srv: Server, deployed: tuple[dict, list[Logged]]) -> None:
    found, _ = deployed
    url = found["url"]
    rng = np.random.default_rng(1)
    # Request ids: a client's own one is kept, a malformed one replaced by a fresh one.
    assert send(url, rng.uniform(0, 1, (BATCH, 2)), "client-id-1")[0] == "client-id-1"
    replaced = send(url, rng.uniform(0, 1, (BATCH, 2)), "bad id with spaces")[0]
    assert replaced != "bad id with spaces" and len(replaced) == 32
    answered = [send(url, rng.uniform(0, 1, (BATCH, 2))) for _ in range(REQUESTS - 2)]
    deadline = time.monotonic() + 30
    while written(url) < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.1)
    report = monitor(srv)
    assert (report["requests"], report["rows"], report["errors"], report["drifted"]) == (20, 200, 0, [])
    assert report["model_versions"] == ["1"] and report["latency_p50_ms"] > 0 and report["quality"] is None
    # Labels for 10 requests: the first 5 as predicted, the next 5 the other class: accuracy 0.5.
    labels = [{"request_id": rid, "row": row, "label": p if n < 5 else 1 - p}
              for n, (rid, predictions) in enumerate(answered[:10]) for row, p in enumerate(predictions)]  # fmt: skip
    with srv.client() as api:
        posted = api.post(f"/api/v1/deployments/dev/{MODEL}/labels", json={"labels": labels})
        assert posted.status_code == 201 and posted.json()["accepted"] == 100, posted.text
        bad = api.post(f"/api/v1/deployments/dev/{MODEL}/labels", json={"labels": [{"request_id": "x y"}]})
        assert bad.status_code == 400 and "labels[0]: request_id must be" in bad.json()["error"]
    # Shifted traffic: b moves out of its training range, a stays.
    for _ in range(REQUESTS):
        rows = rng.uniform(0, 1, (BATCH, 2))
        rows[:, 1] += 0.8
        send(url, rows)
    deadline = time.monotonic() + 30
    while written(url) < 2 * REQUESTS and time.monotonic() < deadline:
        time.sleep(0.1)
    report = monitor(srv)
    features = {f["name"]: f for f in report["features"]}
    assert (report["requests"], report["drifted"], sorted(features)) == (40, ["b"], ["a", "b"])
    assert features["b"]["psi"] >= 0.2 and features["a"]["drifted"] is False
    quality = report["quality"]
    assert (quality["metric"], quality["problem"], quality["labelled"], quality["value"]) == (
        "accuracy", "classification", 100, 0.5)  # fmt: skip
    assert "model version 1: run" in report["baseline"]
    human = srv.cli("deployments", "monitor", MODEL, "--env", "dev").stdout
    assert "DRIFT" in human and "accuracy (classification) on 100 labelled rows: 0.5000" in human


def test_monitor_errors_are_clear(srv: Server, deployed: tuple[dict, list[Logged]]) -> None:
    cases = [
        (("deployments", "monitor", MODEL, "--env", "dev", "--window", "5x"), 2, "invalid window '5x': give"),
        (("deployments", "monitor", MODEL, "--env", "dev", "--window", "1000d"), 2, "longer than 90 days"),
        (("deployments", "monitor", "nope", "--env", "dev"), 3, "no deployment of model 'nope' in environment"),
    ]
    for args, code, message in cases:
        out = srv.cli(*args, check=False)
        assert (out.returncode, message in out.stderr, "Traceback" in out.stderr) == (code, True, False), out.stderr


def test_the_quickstart_drift_demo_flags_exactly_the_shifted_features(srv: Server, tmp_path: Path) -> None:
    """Quickstart's last step (mlyard.drift_demo) against a Breast Cancer model like the demo project's."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlyard.client import Client
    from mlyard.drift_demo import SHIFTED, run_drift_demo

    with srv.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    data = load_breast_cancer(as_frame=True)
    features = data.data.astype("float64")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, data.target)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:  # an experiment of its own: the default one keeps its artifacts in ./mlruns of the working directory
        experiment = MlflowClient(tracking_uri=uri).create_experiment("demo-drift", (tmp_path / "art").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            log_profile(profile_frame(features, predictions=model.predict(features)))
            info = mlflow.sklearn.log_model(model, name="model", input_example=features.head(2))
        MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model("demo-drift")
        MlflowClient(tracking_uri=uri, registry_uri=uri).create_model_version(
            "demo-drift", info.model_uri, run_id=run.info.run_id, model_id=info.model_id)  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)
    created = srv.cli("deployments", "create", "demo-drift", "--env", "dev", "--version", "1", "--json")
    found = json.loads(created.stdout)
    said: list[str] = []
    with Client(srv.url, srv.token, timeout=120) as client:
        report = run_drift_demo(client, "dev", "demo-drift", f"{found['url']}/invocations", said.append)
    assert (report.requests, sorted(report.drifted)) == (40, sorted(SHIFTED)), said
    assert said[0] == "sent 40 requests (200 rows) with mean radius and worst radius x1.6"
    assert said[2] == "drifted features: mean radius, worst radius"
    assert [line.split(":")[0] for line in said[3:5]] == ["  DRIFT mean radius", "  DRIFT worst radius"]
