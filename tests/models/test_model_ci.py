"""Model CI end to end: the promote-model pipeline of a created demo project tests the version in
Staging and promotes it only when it passes; otherwise it stays in Staging and the run fails."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.ci.helpers import logs, runs_of, wait_state
from tests.conftest import Git, Server

pytestmark = [pytest.mark.slow, pytest.mark.long]
MODEL = "ci-model"


class FakeSlackWebhook:
    """Stands in for Slack's incoming-webhook service, which this machine cannot reach: a real HTTP
    server on loopback that keeps the JSON messages posted to it."""

    def __init__(self) -> None:
        messages: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.messages = messages
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/T000/B000/fake"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slack(server: Server) -> Iterator[FakeSlackWebhook]:
    fake = FakeSlackWebhook()
    out = server.cli("environments", "set", "dev", "--notify-webhook", fake.url).stdout
    assert "notification webhook set" in out
    yield fake
    server.cli("environments", "set", "dev", "--notify-webhook", "")
    fake.close()


def newest_run(server: Server, pipeline: str, count: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(server, pipeline)
        if len(runs) >= count:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"{pipeline}: fewer than {count} runs")


def versions(server: Server) -> dict[str, dict]:
    doc = json.loads(server.cli("models", "show", MODEL, "--json").stdout)
    return {str(v["version"]): v for v in doc["versions"]}


def test_model_ci_promotes_only_a_passing_staging_version(server: Server, git: Git, slack: FakeSlackWebhook) -> None:
    server.cli("create", MODEL, "--env", "dev", "--demo", "--follow")
    first_ci = newest_run(server, f"{MODEL}-promote-model", 1)
    deploy = newest_run(server, f"{MODEL}-deploy-code", 1)
    server.cli("runs", "permit", str(deploy["id"]))
    server.cli("runs", "permit", str(first_ci["id"]))
    nothing = wait_state(server, first_ci["id"], timeout=120)
    assert nothing["state"] == "succeededWithIssues"
    assert "no model version in Staging: nothing to promote" in logs(server, first_ci["id"])
    assert wait_state(server, deploy["id"], timeout=120)["state"] == "succeeded"

    server.cli("jobs", "run", "--env", "dev", "--app", MODEL, "train")
    server.cli("models", "stage", MODEL, "1", "Staging")
    git("clone", "-q", server.remote(MODEL), "w")
    work = git.cwd / "w"
    sha = git.commit({"README.md": "release v1\n"}, "release v1", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    passed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 2)["id"], timeout=240)
    assert passed["state"] == "succeeded", logs(server, passed["id"])
    assert passed["tests"]["failed"] == 0 and passed["tests"]["passed"] >= 3
    v1 = versions(server)["1"]
    assert v1["stage"] == "Production" and "production" in v1["aliases"]
    assert v1["tags"]["git_commit"] == sha and v1["tags"]["test_status"] == "passed"
    assert v1["tags"]["git_branch"] == "refs/heads/master" and v1["tags"]["run_url"].endswith(f"/runs/{passed['id']}")
    assert [m["text"] for m in slack.messages] == [
        f":white_check_mark: {MODEL} version 1 promoted to Production (refs/heads/master at {sha[:10]}): "
        f"{v1['tags']['run_url']}"
    ]
    assert slack.url not in logs(server, passed["id"])  # a secret setting of the connection: masked

    # An impossible gate: version 2 stays in Staging and the run fails naming the metric.
    git.commit({"mlops/model-gates.yml": "metrics:\n  accuracy:\n    min: 0.9999\n"}, "impossible gate", cwd=work)
    server.cli("jobs", "run", "--env", "dev", "--app", MODEL, "train")
    server.cli("models", "stage", MODEL, "2", "Staging")
    git("push", "-q", "origin", "master", cwd=work)
    failed = wait_state(server, newest_run(server, f"{MODEL}-promote-model", 3)["id"], timeout=240)
    assert failed["state"] == "failed"
    text = logs(server, failed["id"])
    assert "accuracy" in text and "model gate failed" in text
    after = versions(server)
    assert after["2"]["stage"] == "Staging" and after["2"]["tags"]["test_status"] == "failed"
    assert after["1"]["stage"] == "Production"
    assert len(slack.messages) == 2 and slack.messages[1]["text"].startswith(
        f":x: {MODEL} version 2 failed model CI and stays in Staging"
    )
    assert "notified the webhook (200)" in text
