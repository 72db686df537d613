"""A stream of scoring requests during a redeploy: the measure of "zero failed requests"."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class RequestStream:
    """A thread posting `body` to a scoring URI (a new connection per request, as many clients do) until the
    `with` block ends; it records each answer's predictions and each failure."""

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
        while not self._stop.is_set():
            try:
                answer = httpx.post(self.uri, json=self.body, timeout=30)
                if answer.status_code == 200:
                    self.seen.append(answer.json()["predictions"])
                else:
                    self.failures.append(f"{answer.status_code} {answer.text}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
