"""A waiting claim is not put to sleep by a job queued while it looked (ci/queue.py `claim`, `notify_ready`)."""

from __future__ import annotations

import threading
from typing import Any

from mlyard.ci.queue import JobQueue


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_a_job_queued_while_the_claim_looked_is_claimed_without_waiting() -> None:
    queue = JobQueue(None, 30, threading.RLock())  # type: ignore[arg-type]  # no database: the look is replaced
    queue.ready = CountingCondition()
    looks: list[int] = []

    def look(agent: str, build: Any) -> Any:
        looks.append(1)
        if len(looks) == 1:  # another thread queues a job right after this look found none
            queue.notify_ready()
            return None
        return {"job": "queued meanwhile"}

    queue._claim_one = look  # type: ignore[method-assign]
    assert queue.claim("agent", lambda *args: None, wait=30) == {"job": "queued meanwhile"}
    assert len(looks) == 2 and queue.ready.waits == 0  # looked again at once, instead of sleeping up to 5 s


def test_a_claim_with_nothing_queued_waits_and_is_woken() -> None:
    queue = JobQueue(None, 30, threading.RLock())  # type: ignore[arg-type]
    queue.ready = CountingCondition()
    looks: list[int] = []
    woken = threading.Event()

    def look(agent: str, build: Any) -> Any:
        looks.append(1)
        if len(looks) == 1:
            threading.Timer(0.2, lambda: (woken.set(), queue.notify_ready())).start()
            return None
        return {"job": "queued later"} if woken.is_set() else None

    queue._claim_one = look  # type: ignore[method-assign]
    assert queue.claim("agent", lambda *args: None, wait=30) == {"job": "queued later"}
    assert queue.ready.waits >= 1
