"""The generated project's monitoring (issue 14): its baseline helper writes the platform's one profile
format, and mlops/monitor.py reads a report over HTTP, applies mlops/monitoring.yml and alerts a webhook
(a fake of Slack's incoming-webhook service on loopback) — without mlyard installed in the project."""

from __future__ import annotations

import json
import runpy
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlyard.monitoring.profile import Profile, profile_frame
from tests.fakes import FakeSlackWebhook
from tests.scaffold.conftest import run_python


def test_the_template_baseline_is_the_platform_profile_format(demo_project: Path) -> None:
    baseline = runpy.run_path(str(demo_project / "src/my_model/baseline.py"))  # no __pycache__ in the project
    rng = np.random.default_rng(3)
    n = 500
    numeric = rng.normal(5, 2, n)
    numeric[::17] = np.nan
    frame = pd.DataFrame({
        "x": numeric, "count": rng.integers(0, 4, n), "city": rng.choice(["a", "b", "c"], n),
        "flag": rng.random(n) > 0.5, "id": [f"u{i % 80}" for i in range(n)], "big": rng.integers(0, 10_000, n),
    })  # fmt: skip
    predictions = rng.integers(0, 2, n)
    made = json.loads(json.dumps(baseline["profile"](frame, predictions)))
    assert made == json.loads(profile_frame(frame, predictions=predictions).to_json())
    parsed = Profile.from_dict(made)
    assert [f.kind for f in parsed.features] == ["numeric", "categorical", "categorical", "categorical",
                                                 "categorical", "numeric"]  # fmt: skip
    assert parsed.feature("id") is not None and parsed.feature("id").categories[-1][0] == "__other__"  # type: ignore[union-attr]


class FakeMonitorApi:
    """The serving target's monitoring API (`GET /api/v1/deployments/ENV/MODEL/monitor`), answering `report`."""

    def __init__(self) -> None:
        self.report: dict = {}
        self.requests: list[tuple[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append((self.path, self.headers.get("Authorization", "")))
                if not self.path.startswith("/prefix/api/v1/deployments/dev/my-model/monitor?window="):
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "no deployment of model"}')
                    return
                body = json.dumps(api.report).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"serving+http://127.0.0.1:{self.httpd.server_address[1]}/prefix/dev"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeMonitorApi, FakeSlackWebhook]]:
    api, slack = FakeMonitorApi(), FakeSlackWebhook()
    yield api, slack
    api.close()
    slack.close()


def report(requests: int, drifted: list[str], accuracy: float | None = None) -> dict:
    features = [{"name": n, "psi": 1.5 if n in drifted else 0.01, "drifted": n in drifted} for n in ("a", "b")]
    quality = {"metric": "accuracy", "problem": "classification", "labelled": 200, "value": accuracy}
    return {"environment": "dev", "requests": requests, "drifted": drifted, "features": features,
            "prediction_drift": {"drifted": False}, "baseline": "model version 1", "quality":
            quality if accuracy is not None else None}  # fmt: skip


def monitor(project: Path, api: FakeMonitorApi, slack: FakeSlackWebhook, *args: str) -> tuple[int, str, str]:
    env = {"DEPLOY_TARGET_URI": api.target, "MLFLOW_TRACKING_TOKEN": "group-token", "NOTIFY_WEBHOOK_URL": slack.url}
    proc = run_python(project, "mlops/monitor.py", "--model", "my-model", "--run-url", "http://ci/run/7", *args,
                      env=env)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def test_monitor_alerts_and_asks_for_a_retraining_past_a_threshold_only(
    demo_project: Path, fakes: tuple[FakeMonitorApi, FakeSlackWebhook]
) -> None:
    api, slack = fakes
    retrain = "##vso[task.setvariable variable=retrain;isOutput=true]"
    api.report = report(500, [], accuracy=0.95)  # within the thresholds
    code, out, err = monitor(demo_project, api, slack)
    assert (code, slack.messages) == (0, []), err
    assert out.splitlines()[-1] == retrain + "false" and "within the thresholds" in out
    assert api.requests == [("/prefix/api/v1/deployments/dev/my-model/monitor?window=24h", "Bearer group-token")]

    api.report = report(500, ["b"], accuracy=0.5)  # drift and quality both past their thresholds
    code, out, err = monitor(demo_project, api, slack)
    assert (code, out.splitlines()[-1]) == (0, retrain + "true"), err
    (alert,) = slack.messages
    assert alert["text"] == (
        ":warning: my-model in dev: past the monitoring thresholds: 1 drifted feature(s), more than 0: b (PSI 1.50); "
        "accuracy 0.5000 on 200 labelled rows, below 0.8; retraining queued: http://ci/run/7"
    )
    assert "##vso[task.logissue type=warning]1 drifted feature(s)" in out

    api.report = report(20, ["a", "b"])  # too little traffic to judge
    code, out, _ = monitor(demo_project, api, slack)
    assert (code, len(slack.messages), out.splitlines()[-1]) == (0, 1, retrain + "false")
    assert "fewer than 100 requests (min_requests): nothing to judge" in out


def test_monitor_errors_name_the_file_and_the_key(
    demo_project: Path, tmp_path: Path, fakes: tuple[FakeMonitorApi, FakeSlackWebhook]
) -> None:
    api, slack = fakes
    bad = tmp_path / "monitoring.yml"
    bad.write_text("window: 5x\n", encoding="utf-8")
    code, _, err = monitor(demo_project, api, slack, "--config", str(bad))
    assert code == 2
    assert f"{bad}: window '5x': give minutes, hours or days" in err and "Traceback" not in err
    bad.write_text("drift:\n  max_drifted: 1\n", encoding="utf-8")
    code, _, err = monitor(demo_project, api, slack, "--config", str(bad))
    assert code == 2
    assert f"{bad}: unknown key 'drift.max_drifted'" in err and "Traceback" not in err
    code, out, err = monitor(demo_project, api, slack, "--model", "other")  # not deployed: a warning, no failure
    assert code == 0 and "##vso[task.logissue type=warning]nothing to monitor: " in out, err
    assert out.splitlines()[-1] == "##vso[task.setvariable variable=retrain;isOutput=true]false"
    api.close()
    code, _, err = monitor(demo_project, api, slack)  # the API does not answer
    assert code == 1 and "the monitoring report of my-model could not be read: " in err and "Traceback" not in err
