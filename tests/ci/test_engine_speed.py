"""The run engine's speed work (issue 15), by behaviour: `GET /runs/{id}?wait=S` is answered when the run
ends, woken by the scheduler (no polling), or after S seconds with the run as it is; the scheduler's targeted
wake-ups (a job's end advances its run only); run numbers read only the runs with the same prefix."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mlyard.ci import states
from mlyard.db.engine import transaction
from mlyard.db.tables import Run, RunJob
from tests.ci.engine import Engine
from tests.ci.helpers import make_repo, register, run
from tests.conftest import Git, Server

STEP = 'steps:\n- script: "true"\n'
SLOW = "steps:\n- script: sleep 20\n"


@pytest.mark.slow
def test_wait_answers_with_the_ended_run(server: Server, git: Git) -> None:
    make_repo(server, git, "wait-ends", {"ci.yml": STEP})
    register(server, "wait-ends", "wait-ends", "ci.yml")
    queued = run(server, "wait-ends")
    with server.client() as api:
        doc = api.get(f"/api/v1/runs/{queued['id']}", params={"wait": 60}).json()
        missing = api.get("/api/v1/runs/987654", params={"wait": 5}).status_code
    assert doc["state"] == "succeeded"  # one call: the request was held until the run ended
    # the whole view of the ended run (between wakes only its state is read), and 404 for no such run
    assert [s["state"] for stage in doc["stages"] for job in stage["jobs"] for s in job["steps"]][-1] == "succeeded"
    assert missing == 404


@pytest.mark.slow
def test_wait_gives_the_running_run_when_its_time_is_up_and_refuses_a_bad_wait(server: Server, git: Git) -> None:
    make_repo(server, git, "wait-slow", {"ci.yml": SLOW})
    register(server, "wait-slow", "wait-slow", "ci.yml")
    queued = run(server, "wait-slow")
    with server.client() as api:
        doc = api.get(f"/api/v1/runs/{queued['id']}", params={"wait": 0.5}).json()
        assert doc["state"] not in {"succeeded", "failed", "canceled", "skipped"}
        assert api.get(f"/api/v1/runs/{queued['id']}", params={"wait": 61}).status_code == 422
        assert api.get(f"/api/v1/runs/{queued['id']}", params={"wait": -1}).status_code == 422
        api.post(f"/api/v1/runs/{queued['id']}/cancel").raise_for_status()
        assert api.get(f"/api/v1/runs/{queued['id']}", params={"wait": 60}).json()["state"] == "canceled"


def _state(engine: Engine, run_id: int) -> str:
    with transaction(engine.platform.sessions) as session:
        row = session.get(Run, run_id)
        assert row is not None
        return row.state


def test_a_targeted_tick_advances_only_the_runs_it_names(engine: Engine) -> None:
    engine.repo("targeted", {"ci.yml": STEP})
    engine.pipeline("targeted", "targeted", "ci.yml")
    first = engine.run("targeted")
    second = engine.run("targeted")
    with transaction(engine.platform.sessions) as session:  # the job of `second` ends behind the scheduler's back
        for job in session.scalars(select(RunJob).where(RunJob.run_id == second)):
            states.transition(job, states.RUNNING)
            states.transition(job, states.SUCCEEDED)
    engine.orchestrator.tick(only={first})
    assert _state(engine, second) == states.RUNNING  # not named: it waits for the next sweep
    engine.orchestrator.tick()
    assert _state(engine, second) == states.SUCCEEDED
    assert _state(engine, first) == states.RUNNING


def test_the_end_of_a_run_wakes_its_waiters(engine: Engine) -> None:
    engine.repo("woken", {"ci.yml": STEP})
    engine.pipeline("woken", "woken", "ci.yml")
    run_id = engine.run("woken")
    woken = threading.Event()
    unsubscribe = engine.orchestrator.run_ends.subscribe(woken.set)
    assert unsubscribe is not None
    job = engine.claim()
    assert job is not None and not woken.is_set()
    engine.complete(int(job["job_id"]), states.SUCCEEDED)
    engine.settle()
    assert _state(engine, run_id) == states.SUCCEEDED and woken.is_set()
    unsubscribe()
    woken.clear()
    engine.orchestrator.run_ends.ended()
    assert not woken.is_set()  # unsubscribed: no longer called


def test_waiters_are_bounded(engine: Engine) -> None:
    ends = engine.orchestrator.run_ends
    subscriptions = [ends.subscribe(lambda: None) for _ in range(ends.MAX_WAITERS)]
    assert all(subscriptions) and ends.subscribe(lambda: None) is None
    for unsubscribe in subscriptions:
        assert unsubscribe is not None
        unsubscribe()
    assert ends.subscribe(lambda: None) is not None


def test_revision_counts_only_numbers_with_the_same_prefix(engine: Engine) -> None:
    yaml = "name: rel_1%$(Rev:r)\nsteps:\n- script: 'true'\n"  # `_` and `%` are literal, not LIKE wildcards
    engine.repo("numbers", {"ci.yml": yaml})
    engine.pipeline("numbers", "numbers", "ci.yml")
    first, second = engine.run("numbers"), engine.run("numbers")
    with transaction(engine.platform.sessions) as session:
        numbers = [session.get(Run, run_id).build_number for run_id in (first, second)]  # type: ignore[union-attr]
    assert numbers == ["rel_1%1", "rel_1%2"]


def test_a_lost_lease_advances_its_run_between_sweeps(engine: Engine) -> None:
    engine.repo("lease", {"ci.yml": STEP})
    engine.pipeline("lease", "lease", "ci.yml")
    run_id = engine.run("lease")
    job = engine.claim()
    assert job is not None
    with transaction(engine.platform.sessions) as session:  # its agent stopped heartbeating long ago
        row = session.get(RunJob, int(job["job_id"]))
        assert row is not None
        row.lease_expires_at = datetime.now(UTC) - timedelta(minutes=5)
    engine.orchestrator.tick(only=set())  # housekeeping, no run named, no sweep
    assert _state(engine, run_id) == states.FAILED


TWO_JOBS = "jobs:\n- job: A\n  steps:\n  - script: 'true'\n- job: B\n  dependsOn: A\n  steps:\n  - script: 'true'\n"


def test_agents_are_woken_when_a_job_becomes_claimable_not_on_every_pass(engine: Engine) -> None:
    engine.repo("wake", {"ci.yml": TWO_JOBS})
    engine.pipeline("wake", "wake", "ci.yml")
    run_id = engine.run("wake")
    wakes: list[int] = []
    notify_ready = engine.orchestrator.queue.notify_ready
    engine.orchestrator.queue.notify_ready = lambda: (wakes.append(1), notify_ready())  # type: ignore[method-assign]
    engine.orchestrator.tick(only={run_id}, housekeeping=False)
    assert wakes == []  # nothing new to claim: the waiting agents sleep on
    first = engine.claim()
    assert first is not None and first["name"] == "A"
    engine.complete(int(str(first["job_id"])), states.SUCCEEDED)
    engine.orchestrator.tick(only={run_id}, housekeeping=False)
    assert wakes == [1]  # B became claimable
    second = engine.claim()
    assert second is not None and second["name"] == "B"
    engine.complete(int(str(second["job_id"])), states.SUCCEEDED)
    engine.orchestrator.tick(only={run_id}, housekeeping=False)
    assert wakes == [1] and _state(engine, run_id) == states.SUCCEEDED


def test_the_pipeline_file_of_a_commit_is_read_from_git_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit's files never change: the pipeline's creation and two runs of the same commit (each queued,
    then compiled) read the file once."""
    from mlyard.git import repos as git

    reads: list[str] = []
    read_file = git.read_file
    monkeypatch.setattr(git, "read_file", lambda path, rev, name: reads.append(name) or read_file(path, rev, name))
    engine.repo("read-once", {"ci.yml": STEP})
    engine.pipeline("read-once", "read-once", "ci.yml")  # checks the file: the first read
    first, second = engine.run("read-once"), engine.run("read-once")
    assert engine.drive({}) and _state(engine, first) == _state(engine, second) == states.SUCCEEDED
    assert reads == ["ci.yml"]


class _Connected:
    async def is_disconnected(self) -> bool:
        return False


def test_a_followed_log_ends_when_its_run_ends_not_at_the_next_poll(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlyard pipelines run --wait` follows the log: the run's end wakes the stream (the poll is a minute here)."""
    import asyncio

    from mlyard.api.routes import pipelines as routes

    monkeypatch.setattr(routes, "FOLLOW_POLL_SECONDS", 60.0)
    engine.repo("follow", {"ci.yml": STEP})
    engine.pipeline("follow", "follow", "ci.yml")
    run_id = engine.run("follow")
    job = engine.claim()
    assert job is not None
    lines: list[str] = []

    async def follow() -> None:
        stream = routes._follow(engine.platform, run_id, None, _Connected())  # type: ignore[arg-type]
        async for chunk in stream:
            lines.append(chunk.decode())

    def end_the_run() -> None:
        engine.complete(int(str(job["job_id"])), states.SUCCEEDED)
        engine.orchestrator.tick(only={run_id}, housekeeping=False)  # the run ends: its waiters are woken

    async def main() -> None:
        task = asyncio.create_task(follow())
        await asyncio.sleep(0.2)  # the stream is waiting
        await asyncio.to_thread(end_the_run)
        await asyncio.wait_for(task, 30)  # well before the next poll

    asyncio.run(main())
    assert lines[-1] == f"## run {run_id} succeeded\n"
