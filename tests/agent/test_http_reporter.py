"""The HTTP reporter's outbox: reports are sent in the background, in order, adjacent log batches of a
step merged, and what queued up meanwhile in one request to a server that takes batches; artifacts and the
job's outcome wait for everything queued before them. (The server's side of a batch, with a real server:
tests/ci/test_secret_texts.py; every job of the suite's real agents sends batches.)"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlyard.agent.http_reporter import MERGED_LOG_LINES, HttpReporter
from mlyard.errors import NotFound
from mlyard.protocol import MAX_BATCHED_REPORTS, SUCCEEDED, JobOutcome, JobSpec, StepSpec

SPEC = JobSpec(job_id=7, run_id=1, attempt=1, stage="S", name="J", display_name="J", access_token="myj_x")
STEP = StepSpec(id="s1", name="s1", display_name="Run s1", kind="script")


class FakeClient:
    """Records the calls; `gate` holds every post until it is set (a slow server)."""

    def __init__(self, gone: str = "") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a post came to the gate
        self.gone = gone  # a path answered 404

    def post(self, path: str, body: Any = None) -> Any:
        self.entered.set()
        self.gate.wait(10)
        if self.gone and path.endswith(self.gone):
            raise NotFound("job 7 not found")
        self.calls.append((path, body))
        return {}

    def get(self, path: str, **params: Any) -> Any:
        self.calls.append((path, None))
        return ["a"]


def _paths(client: FakeClient) -> list[str]:
    return [path.removeprefix("/api/v1/agent/jobs/7") for path, _ in client.calls]


def test_reports_are_sent_in_order_with_log_batches_merged_and_the_outcome_last() -> None:
    client = FakeClient()
    client.gate.clear()  # nothing gets through until every report is queued: the step did not wait for them
    reporter = HttpReporter(client, SPEC)  # type: ignore[arg-type]
    reporter.step_started(STEP)
    reporter.log(STEP, [(1.0, "one")])
    reporter.log(STEP, [(2.0, "two")])
    reporter.log(None, [(3.0, "job line")])
    reporter.step_finished(STEP, SUCCEEDED, [])
    client.gate.set()
    reporter.complete(JobOutcome(SUCCEEDED))
    paths = _paths(client)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["s1", "logs", "logs", "s1", "complete"]
    assert client.calls[1][1] == {"step_id": "s1", "lines": [[1.0, "one"], [2.0, "two"]]}
    assert client.calls[2][1]["step_id"] is None
    assert client.calls[3][1]["state"] == "completed"
    reporter.log(STEP, [(4.0, "late")])  # after the outcome: never sent
    assert len(client.calls) == 5


def test_merged_log_batches_stay_within_the_size_of_one_batch() -> None:
    client = FakeClient()
    client.gate.clear()
    reporter = HttpReporter(client, SPEC)  # type: ignore[arg-type]
    reporter.step_started(STEP)  # the sender takes this one and waits at the gate: the logs stay queued
    for index in range(3):
        reporter.log(STEP, [(float(index), "x")] * (MERGED_LOG_LINES // 2 + 1))
    client.gate.set()
    reporter.complete(JobOutcome(SUCCEEDED))
    batches = [body["lines"] for path, body in client.calls if path.endswith("/logs")]
    assert len(batches) == 3 and sum(map(len, batches)) == 3 * (MERGED_LOG_LINES // 2 + 1)
    assert all(len(lines) <= MERGED_LOG_LINES for lines in batches)


def test_listing_artifacts_waits_for_the_queued_reports() -> None:
    client = FakeClient()
    reporter = HttpReporter(client, SPEC)  # type: ignore[arg-type]
    reporter.step_started(STEP)
    reporter.log(STEP, [(1.0, "one")])
    assert reporter.list_artifacts() == ["a"]
    assert [p.rsplit("/", 1)[-1] for p in _paths(client)] == ["s1", "logs", "artifacts"]
    reporter.complete(JobOutcome(SUCCEEDED))


def test_a_report_about_a_job_that_is_gone_cancels_it(tmp_path: Path) -> None:
    client = FakeClient(gone="/logs")
    reporter = HttpReporter(client, SPEC)  # type: ignore[arg-type]
    reporter.log(STEP, [(1.0, "one")])
    reporter.flush()
    assert reporter.cancel_requested() and reporter.lost
    reporter.complete(JobOutcome(SUCCEEDED))


def test_what_queued_up_goes_in_one_batch_to_a_server_that_takes_them() -> None:
    client = FakeClient()
    client.gate.clear()  # the first report waits at the gate while the others queue up
    reporter = HttpReporter(client, replace(SPEC, batch_reports=True))  # type: ignore[arg-type]
    other = StepSpec(id="s 2", name="s2", display_name="Run s2", kind="script")
    reporter.step_started(STEP)
    assert client.entered.wait(10)
    reporter.log(STEP, [(1.0, "one")])
    reporter.log(STEP, [(2.0, "two")])
    reporter.step_finished(STEP, SUCCEEDED, [])
    reporter.publish_test_results({"title": "t"})  # not in a batch: sent alone, in its place
    reporter.step_started(other)
    for index in range(MAX_BATCHED_REPORTS + 1):  # more than a batch holds: two batches
        reporter.log(other if index % 2 else None, [(3.0 + index, f"line {index}")])
    client.gate.set()
    reporter.complete(JobOutcome(SUCCEEDED))
    paths = [p.rsplit("/", 1)[-1] for p in _paths(client)]
    assert paths == ["s1", "reports", "tests", "reports", "reports", "complete"], paths
    first = client.calls[1][1]["reports"]
    assert first == [{"kind": "logs", "step_id": "s1", "lines": [[1.0, "one"], [2.0, "two"]]},
                     {"kind": "step", "step_id": "s1", "state": "completed", "result": "succeeded", "issues": [],
                      "display_name": "Run s1"}]  # fmt: skip
    batches = [client.calls[3][1]["reports"], client.calls[4][1]["reports"]]
    assert batches[0][0] == {"kind": "step", "step_id": "s 2", "state": "running", "display_name": "Run s2"}
    assert len(batches[0]) == MAX_BATCHED_REPORTS and sum(map(len, batches)) == MAX_BATCHED_REPORTS + 2
    sent = [line for batch in batches for item in batch if item["kind"] == "logs" for line in item["lines"]]
    assert [text for _, text in sent] == [f"line {index}" for index in range(MAX_BATCHED_REPORTS + 1)]


def test_a_batch_holds_at_most_the_log_lines_of_one_request() -> None:
    client = FakeClient()
    client.gate.clear()
    reporter = HttpReporter(client, replace(SPEC, batch_reports=True))  # type: ignore[arg-type]
    reporter.step_started(STEP)
    assert client.entered.wait(10)
    other = StepSpec(id="s2", name="s2", display_name="Run s2", kind="script")
    for step in (None, STEP, other):  # three steps' logs: not merged into one another
        reporter.log(step, [(1.0, "x")] * (MERGED_LOG_LINES // 2 + 1))
    client.gate.set()
    reporter.complete(JobOutcome(SUCCEEDED))
    bodies = [body for path, body in client.calls if not path.endswith(("/s1", "/complete"))]
    counts = [sum(len(item.get("lines", ())) for item in body["reports"]) if "reports" in body else len(body["lines"])
              for body in bodies]  # fmt: skip
    assert sum(counts) == 3 * (MERGED_LOG_LINES // 2 + 1) and all(count <= MERGED_LOG_LINES for count in counts)
