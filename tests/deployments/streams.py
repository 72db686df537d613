"""A stream of scoring requests during a redeploy: the measure of "zero failed requests"."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class RequestStream:
    """A thread posting `body` to a scoring URI (a new connection per request, as many clients do) until the
    `with` block ends, about every PACE seconds; it records each answer's predictions and each failure.

    One client without keep-alive (a new TCP connection per request, no new client and TLS context per request)
    and a pace instead of a busy loop: a loop as fast as the machine allows took a core from the scoring server
    being started, so a redeploy lasted longer and was met by more requests, all costing CPU."""

    PACE = 0.01

    def __init__(self, scoring_uri: str, body: dict[str, Any]) -> None:
        self.uri = scoring_uri
        self.body = body
        self.seen: list[list[Any]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_for(self, predictions: list[Any], timeout: float = 30) -> None:
        """Until the answers are `predictions` (then half a second more of them)."""
        deadline = time.monotonic() + timeout
        while (not self.seen or self.seen[-1] != predictions) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)

    def _run(self) -> None:
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self._stop.wait(self.PACE):
                try:
                    answer = client.post(self.uri, json=self.body)
                    if answer.status_code == 200:
                        self.seen.append(answer.json()["predictions"])
                    else:
                        self.failures.append(f"{answer.status_code} {answer.text}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
