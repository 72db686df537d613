"""Monitoring end to end against a real server: a deployed model logs its traffic, in-distribution then
shifted; labels are posted by request id; `mlyard deployments monitor --json` flags exactly the shifted
feature and reports the accuracy on the labelled rows. (Quickstart's drift demo: tests/monitoring/test_drift_demo.py
for its rows and lines, tests/models/test_quickstart.py end to end.)"""

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
from tests.conftest import TLS, Server
from tests.registry.conftest import Logged, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.long]  # three logged models, a deployment
MODEL = "watched"
BATCH, REQUESTS = 10, 20  # rows per request, requests per phase


@pytest.fixture(scope="module")
def srv(server: Server) -> Server:
    """The session server (nothing here restarts it; a server and its dev MLflow server of this module's own were
    seconds of CPU). The report is per deployment: other tests' models in dev do not reach it."""
    return server


@pytest.fixture(scope="module")
def deployed(srv: Server) -> Iterator[tuple[dict, list[Logged]]]:
    """Version 1 of MODEL, its run holding the baseline profile of its (uniform) training data, deployed in dev;
    deleted at the module's end (later modules on the session server list dev's deployments)."""
    with srv.client() as api:
        uri = api.get("/api/v1/environments/dev").json()["mlflow_tracking_uri"]
    logged = register_versions(uri, MODEL)
    rng = np.random.default_rng(0)
    log_profile(profile_frame(pd.DataFrame({"a": rng.uniform(0, 1, 2000), "b": rng.uniform(0, 1, 2000)})),
                run_id=logged[0].run_id, tracking_uri=uri)  # fmt: skip
    found = json.loads(srv.cli("deployments", "create", MODEL, "--env", "dev", "--version", "1", "--json").stdout)
    yield found, logged
    srv.cli("deployments", "delete", MODEL, "--env", "dev", check=False)


PROTOBUF = "google/_upb/"  # the folder of protobuf's C extension (MLflow's messages)


def mapped(pid: int) -> str:
    """The files process `pid` has mapped (/proc/PID/maps)."""
    return Path(f"/proc/{pid}/maps").read_text()


def send(url: str, rows: np.ndarray, request_id: str | None = None) -> tuple[str, list]:
    headers = {"X-Request-Id": request_id} if request_id else {}
    body = {"dataframe_split": {"columns": ["a", "b"], "data": rows.tolist()}}
    answer = httpx.post(f"{url}/invocations", json=body, headers=headers, timeout=30, verify=TLS)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"], answer.json()["predictions"]


def written(url: str) -> int:
    return int(httpx.get(f"{url}/health", timeout=10, verify=TLS).json()["inference_log"]["written"])


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
    # The server read the baseline where the run keeps it, without MLflow: protobuf's extension, which MLflow's
    # import loads, is mapped in the environment's MLflow server (a fork of the zygote), never in the server.
    with srv.client() as api:
        zygote = api.get("/health").json()["mlflow_zygote"]
    assert PROTOBUF in mapped(zygote["pid"]) and PROTOBUF not in mapped(srv.proc.pid)  # type: ignore[union-attr]
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

