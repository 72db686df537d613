"""The JobReporter of a claimed job: the server's agent API, called with the job's own token.

Progress (steps started and finished, log lines, test results, coverage) is sent in order by a background
sender, so a step's process starts without waiting for the server's answer to the previous report; calls
that need the server's state (artifacts, the job's outcome) first wait until everything before them was sent.
Adjacent log batches of one step are sent as one request, and to a server that takes them (`batch_reports`
in the job's spec) the steps' states and log lines that queued up while the previous request was under way
go in one request too (`POST .../reports`, at most MAX_BATCHED_REPORTS reports and MERGED_LOG_LINES log lines):
each request costs the server its own authentication and dispatch, and the job's outcome waits for them all.

A background thread sends heartbeats every second (every `lease_seconds / 3` if that is shorter); the
answer says whether the job was canceled, so a cancel reaches the running step within about a second.
A job that is no longer this agent's (404, 409, 401/403 once its token is revoked) is canceled locally,
and so is a job whose heartbeats have all failed for longer than its lease (whatever the error: the
server has expired the lease by then). Calls that fail because the server is unreachable
or answers 5xx are retried with backoff (the server may be restarting).
"""

from __future__ import annotations

import io
import logging
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from mlyard.archives import UnsafeEntry, safe_extract
from mlyard.client import Client, agent_job_path
from mlyard.errors import (
    AuthenticationError,
    Conflict,
    MlyardError,
    NotFound,
    OperationFailed,
    PermissionDenied,
    ServerUnavailable,
)
from mlyard.protocol import MAX_BATCHED_REPORTS, CoverageSummary, Issue, JobOutcome, JobSpec, StepSpec

CANCEL_POLL_SECONDS = 1.0  # the longest a cancel waits for the next heartbeat
OUTBOX_LIMIT = 256  # reports waiting to be sent; a step that reports faster than the server takes them waits
MERGED_LOG_LINES = 200  # at most this many log lines in one merged request (LogBuffer sends up to 200 at once)
logger = logging.getLogger("mlyard.agent")
T = TypeVar("T")
TRANSIENT = (ServerUnavailable, OperationFailed)
GONE = (NotFound, Conflict, AuthenticationError, PermissionDenied)


def retry(call: Callable[[], T], *, seconds: float, what: str, stop: threading.Event | None = None) -> T:
    """Call until it succeeds or `seconds` have passed, with backoff, on transient errors only."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            return call()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline or (stop is not None and stop.is_set()):
                raise
            logger.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


PACK_LEVEL = 6  # gzip level of an artifact: tarfile's default 9 took 2.8x the CPU for 1 % less (a source tree)


def pack(source: Path) -> bytes:
    """A tar.gz of a directory's contents (or of one file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=PACK_LEVEL) as archive:
        children = sorted(source.iterdir()) if source.is_dir() else [source]
        for child in children:
            archive.add(child, arcname=child.name)
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    """Extract a tar.gz into target, refusing absolute names, `..`, links that escape and special files."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        try:
            safe_extract(archive, target)
        except UnsafeEntry as exc:
            raise OperationFailed(f"the artifact archive has an unsafe entry: {exc}") from None


class HttpReporter:
    """Reports one job to the server (see module doc)."""

    def __init__(
        self, client: Client, spec: JobSpec, *, retry_seconds: float = 60.0, stop: threading.Event | None = None
    ) -> None:
        self.client = client
        self.base = agent_job_path(spec.job_id)
        # The heartbeat also carries the cancel: every second (or lease / 3 if shorter), so a cancel reaches
        # the running step at once, whatever the lease.
        self.interval = max(min(spec.lease_seconds / 3, CANCEL_POLL_SECONDS), 0.2)
        self.lease_seconds = spec.lease_seconds
        self.batch = spec.batch_reports
        self._last_beat = time.monotonic()
        self.retry_seconds = retry_seconds
        self.agent_stop = stop  # set when the agent is shutting down: stop retrying an unreachable server
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_loop, name=f"heartbeat-{spec.job_id}", daemon=True)
        self.lost = False
        # (path, body, what) to send in order; `_pending` counts those queued or being sent
        self._outbox: deque[tuple[str, Any, str]] = deque()
        self._pending = 0
        self._changed = threading.Condition()
        self._closed = False
        self._sender: threading.Thread | None = None

    # -- heartbeats
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.heartbeat()

    def heartbeat(self) -> None:
        try:
            answer = self.client.post(f"{self.base}/heartbeat", {})
        except GONE as exc:
            logger.warning("job %s is no longer this agent's (%s): canceling it", self.base, exc)
            self.lost = True
            self._cancel.set()
            return
        except MlyardError as exc:
            logger.warning("heartbeat failed: %s", exc)
            if time.monotonic() - self._last_beat > self.lease_seconds:  # the server has expired the lease
                logger.warning("no heartbeat got through for %s s: canceling job %s", self.lease_seconds, self.base)
                self.lost = True
                self._cancel.set()
            return
        self._last_beat = time.monotonic()
        if isinstance(answer, dict) and answer.get("cancel"):
            self._cancel.set()

    # -- JobReporter
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _post(self, path: str, body: Any, what: str) -> None:
        """Queue a report for the sender (sent at once, in order; see the module doc)."""
        with self._changed:
            if self._sender is None and not self._closed:
                self._sender = threading.Thread(target=self._send_loop, name=f"reports-{self.base}", daemon=True)
                self._sender.start()
            if self._closed:  # the job was completed: nothing is sent after its outcome
                logger.warning("%s after the job was completed: not sent", what)
                return
            while len(self._outbox) >= OUTBOX_LIMIT:
                self._changed.wait(1.0)
            last = self._outbox[-1] if self._outbox else None
            if path == "/logs" and last is not None and _mergeable(last, body):
                last[1]["lines"].extend(body["lines"])
                return
            self._outbox.append((path, body, what))
            self._pending += 1
            self._changed.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                while not self._outbox and not self._closed:
                    self._changed.wait()
                if not self._outbox:
                    return
                taken = [self._outbox.popleft()]
                if self.batch and _batchable(taken[0]):
                    lines = _lines(taken[0])
                    while (self._outbox and len(taken) < MAX_BATCHED_REPORTS and _batchable(self._outbox[0])
                           and lines + _lines(self._outbox[0]) <= MERGED_LOG_LINES):  # fmt: skip
                        lines += _lines(self._outbox[0])
                        taken.append(self._outbox.popleft())
                self._changed.notify_all()  # room in the outbox
            what = taken[0][2] if len(taken) == 1 else f"sending {len(taken)} reports"
            try:
                if len(taken) == 1:
                    self._send(*taken[0])
                else:
                    self._send("/reports", {"reports": [_batch_item(path, body) for path, body, _ in taken]}, what)
            except Exception:  # never let the sender die: `flush` waits for it
                logger.exception("%s failed inside the agent", what)
            finally:
                with self._changed:
                    self._pending -= len(taken)
                    self._changed.notify_all()

    def flush(self) -> None:
        """Wait until every queued report was sent (or given up on)."""
        with self._changed:
            while self._pending:
                self._changed.wait()

    def _close(self) -> None:
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=5)

    def _send(self, path: str, body: Any, what: str) -> None:
        try:
            retry(lambda: self.client.post(self.base + path, body), seconds=self.retry_seconds, what=what)
        except GONE as exc:
            self.lost = True
            self._cancel.set()
            logger.warning("%s: the job is no longer this agent's (%s)", what, exc)
        except MlyardError as exc:
            logger.error("%s failed: %s", what, exc)

    def step_started(self, step: StepSpec) -> None:
        body = {"state": "running", "display_name": step.display_name}
        self._post(f"/steps/{quote(step.id, safe='')}", body, f"step {step.id} started")

    def step_finished(self, step: StepSpec, result: str, issues: list[Issue]) -> None:
        body = {
            "state": "completed",
            "result": result,
            "issues": [{"type": i.type, "message": i.message} for i in issues],
            "display_name": step.display_name,
        }
        self._post(f"/steps/{quote(step.id, safe='')}", body, f"step {step.id} finished")

    def log(self, step: StepSpec | None, lines: list[tuple[float, str]]) -> None:
        body = {"step_id": step.id if step else None, "lines": [[when, text] for when, text in lines]}
        self._post("/logs", body, "sending log lines")

    def upload_artifact(self, name: str, source: Path) -> None:
        data = pack(source)
        self.flush()
        path = f"{self.base}/artifacts/{quote(name, safe='')}"
        call = lambda: self.client.put_bytes(path, data, content_type="application/gzip")  # noqa: E731
        retry(call, seconds=self.retry_seconds, what=f"uploading artifact {name}")

    def download_artifact(self, name: str, target: Path, run_id: int | None = None) -> None:
        path = f"{self.base}/artifacts/{quote(name, safe='')}" + (f"?run={run_id}" if run_id is not None else "")
        self.flush()
        data = retry(lambda: self.client.get_bytes(path), seconds=self.retry_seconds, what=f"downloading {name}")
        unpack(data, target)

    def list_artifacts(self) -> list[str]:
        self.flush()
        names = retry(lambda: self.client.get(f"{self.base}/artifacts"), seconds=self.retry_seconds,
                      what="listing artifacts")  # fmt: skip
        return [str(name) for name in names] if isinstance(names, list) else []

    def publish_test_results(self, summary: dict[str, Any]) -> None:
        self._post("/tests", summary, "publishing test results")

    def publish_coverage(self, summary: CoverageSummary) -> None:
        self._post("/coverage", summary.to_dict(), "publishing code coverage")

    def complete(self, outcome: JobOutcome) -> None:
        """Report the job's outcome, after every queued report; retried for a long time, since it must not be
        lost."""
        self._close()
        try:
            retry(lambda: self.client.post(f"{self.base}/complete", outcome.to_dict()), seconds=600,
                  what="completing the job", stop=self.agent_stop)  # fmt: skip
        except MlyardError as exc:
            logger.error("could not report the outcome of %s: %s", self.base, exc)


def _batchable(queued: tuple[str, Any, str]) -> bool:
    """Whether a queued report can go in a batch (steps' states and log lines; not tests or coverage)."""
    return queued[0] == "/logs" or queued[0].startswith("/steps/")


def _lines(queued: tuple[str, Any, str]) -> int:
    return len(queued[1]["lines"]) if queued[0] == "/logs" else 0


def _batch_item(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A queued report as an item of `POST .../reports`."""
    if path == "/logs":
        return {"kind": "logs", **body}
    return {"kind": "step", "step_id": unquote(path.removeprefix("/steps/")), **body}


def _mergeable(queued: tuple[str, Any, str], body: dict[str, Any]) -> bool:
    """Whether log `body` can join the queued request (log lines of the same step, within the size of a batch)."""
    path, queued_body, _ = queued
    return (
        path == "/logs"
        and queued_body["step_id"] == body["step_id"]
        and len(queued_body["lines"]) + len(body["lines"]) <= MERGED_LOG_LINES
    )
