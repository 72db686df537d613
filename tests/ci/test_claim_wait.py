"""A waiting claim is not put to sleep by a job queued while it looked (ci/queue.py `claim`, `notify_ready`), and a
job queued while agents wait goes to one with a warm step sandbox first."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mlyard.ci import queue as queue_module
from mlyard.ci.queue import JobQueue
from mlyard.services import jobs
from tests.ci.engine import Engine


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


def _waiting(queue: JobQueue, claims: int) -> None:
    """Until `claims` claims wait in the queue's condition (each looked and found nothing)."""
    deadline = time.monotonic() + 30
    while len(queue.ready._waiters) < claims:  # type: ignore[attr-defined]  # CPython's Condition
        assert time.monotonic() < deadline, "the claims did not start waiting"
        time.sleep(0.01)


def test_a_job_queued_while_agents_wait_goes_to_the_one_with_a_warm_sandbox(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent with a warm step sandbox ready gets the job before one without, even when the cold one asked
    first (woken first); the cold one gets the next job after WARM_FIRST_SECONDS, and claims at once when
    no warm agent waits."""
    # the warm claim has WARM_FIRST_SECONDS to take the job once woken: the product's quarter of a second was
    # not always enough for its thread to run on the suite's busy cores (the cold one took the job, flaky)
    deferral = 2.0
    monkeypatch.setattr(queue_module, "WARM_FIRST_SECONDS", deferral)
    one_job = "trigger: none\njobs:\n- job: A\n  steps:\n  - script: echo a\n"
    engine.repo("work", {"ci.yml": one_job})
    engine.pipeline("work", "work", "ci.yml")
    queue = engine.orchestrator.queue
    for _ in range(2):  # the cold claim waits first both times: a Condition wakes its waiters in order
        got: dict[str, Any] = {}

        def claim(agent: str, warm: bool, got: dict[str, Any] = got) -> None:  # the cold one gets nothing: short
            got[agent] = jobs.claim(engine.platform, engine.orchestrator, agent, wait=30 if warm else 1.5, warm=warm)

        cold = threading.Thread(target=claim, args=("cold-agent", False))
        cold.start()
        _waiting(queue, 1)
        warm = threading.Thread(target=claim, args=("warm-agent", True))
        warm.start()
        _waiting(queue, 2)
        run_id = engine.run("work")
        cold.join(30)
        warm.join(30)
        assert got["warm-agent"] is not None and got["warm-agent"]["run_id"] == run_id
        assert got["cold-agent"] is None  # nothing else was queued
        engine.complete(int(got["warm-agent"]["job_id"]), "succeeded")
        engine.settle()
    # no warm agent waiting: a cold claim takes the job at once
    engine.run("work")
    began = time.monotonic()
    spec = jobs.claim(engine.platform, engine.orchestrator, "cold-agent", wait=0)
    assert spec is not None and time.monotonic() - began < deferral  # no deferral


def test_claims_waiting_for_a_job_answer_at_once_when_the_server_stops(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping server wakes the agents' long-polling claims (no job: 204), so its HTTP server's graceful
    shutdown does not cancel them half-way (they were answered 500 after 2 s, and logged as errors)."""
    monkeypatch.setattr(queue_module, "CLAIM_RECHECK_SECONDS", 60.0)  # only the stop can wake them in time
    got: list[Any] = []

    def claim(name: str) -> None:
        got.append(jobs.claim(engine.platform, engine.orchestrator, name, wait=60, warm=name == "warm-agent"))

    claims = [threading.Thread(target=claim, args=(name,)) for name in ("cold-agent", "warm-agent")]
    for thread in claims:
        thread.start()
    _waiting(engine.orchestrator.queue, 2)
    engine.orchestrator.stop()
    for thread in claims:
        thread.join(30)  # far less than their 60 s wait
        assert not thread.is_alive()
    assert got == [None, None]
