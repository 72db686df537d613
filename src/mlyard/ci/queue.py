"""The job queue: which job an agent gets (claims), how long it stays the agent's (leases), and the
secret values of each running job (to mask what agents send, again on the server side).

One `JobQueue` per server process, held by the scheduler (`Orchestrator.queue`); no module-global state.
A job's secrets are dropped when the job ends: completed, failed as lost (its lease expired, or the
server restarted under it), or canceled.

What a claimed job's spec holds (variables, secrets, connections) is the use cases' business: `claim`
takes the function that builds it (`services.jobs.build_spec`), so this layer needs no services.
"""

from __future__ import annotations

import hashlib
import secrets as random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mlyard.ci import states
from mlyard.db.engine import transaction
from mlyard.db.tables import Run, RunJob, RunStep
from mlyard.errors import Conflict, NotFound
from mlyard.protocol import JobSpec

JOB_TOKEN_PREFIX = "myj_"
AGENT_LOST = "agent lost"
MAX_WAIT_SECONDS = 60.0
CLAIM_RECHECK_SECONDS = 5.0  # a waiting claim asks the database again this often if nothing woke it
# A claim from an agent with no warm step sandbox ready leaves a job this long to an idle agent that has one
# (its Python steps then skip their imports: docs/agent.md, "Warm step sandboxes"); then it claims it anyway.
WARM_FIRST_SECONDS = 0.25

SpecBuilder = Callable[[Session, RunJob, str], JobSpec]
SecretsOf = Callable[[int], tuple[set[str], bool]]  # (values, whether the job is still running)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secret_values(spec: JobSpec) -> set[str]:
    """The values to mask in what the agent of `spec` sends: its secrets and its connections' secret settings."""
    return set(spec.secrets.values()) | {
        c.settings[k] for c in spec.connections.values() for k in c.secret_keys if k in c.settings
    }


class JobQueue:
    """Claims, leases and job secrets of one server process.

    `lock` is the scheduler's lock: a claim and a scheduling pass never interleave.
    """

    def __init__(self, sessions: sessionmaker[Session], lease_seconds: float, lock: threading.RLock) -> None:
        self.sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)
        self.lease_seconds = lease_seconds
        self.lock = lock
        self.ready = threading.Condition()  # notified when jobs may have become claimable
        self._readied = 0  # notify_ready calls so far: a claim waits only if none came since it looked
        # claims under way from agents with a warm step sandbox ready: from their start to their answer, not only
        # while they wait (woken by a job, a warm claim has yet to look: a cold claim woken with it defers then too)
        self._warm_claims = 0
        self._secrets: dict[int, set[str]] = {}
        self._secrets_lock = threading.Lock()

    # -- claims ------------------------------------------------------------------------------
    def claim(
        self, agent: str, build: SpecBuilder, *, wait: float = 0, stop: threading.Event | None = None,
        warm: bool = False, cancel: threading.Event | None = None,
    ) -> JobSpec | None:  # fmt: skip
        """The oldest claimable job, given to `agent`, waiting up to `wait` seconds (at most a minute) for one.

        `cancel` is set when the claim's caller went away (an agent killed or stopped while it waited: its connection
        closed; `wake_claims` then wakes the claim): the claim ends without a job. Without it, the claim of an agent
        that was gone took the next job queued, which then waited for its lease to fail as "agent lost".

        `warm`: the agent has a warm step sandbox ready. While such an agent's claim is under way (waiting for a
        job, or woken by one and about to look), a claim from one without gives it WARM_FIRST_SECONDS to take a
        job first (a job queued while both wait goes to the warm one); after that, or when no warm claim is
        under way, it claims as usual, so no job waits longer than that."""
        deadline = datetime.now(UTC) + timedelta(seconds=max(0.0, min(wait, MAX_WAIT_SECONDS)))
        with self.ready:
            self._warm_claims += warm
        try:
            while True:
                with self.ready:
                    readied = self._readied
                    defer = not warm and self._warm_claims > 0
                if defer and stop is not None:
                    stop.wait(WARM_FIRST_SECONDS)
                elif defer:
                    time.sleep(WARM_FIRST_SECONDS)
                if _is_set(stop) or _is_set(cancel):  # the server stops, or the agent is gone: no job goes to it
                    return None
                with self.lock:
                    spec = self._claim_one(agent, build)
                if spec is not None:
                    return spec
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                if remaining <= 0 or _is_set(stop) or _is_set(cancel):
                    return None
                with self.ready:  # woken when a job is queued (notify_ready); a re-check now and then: a safety net
                    if self._readied == readied:  # a job queued while this claim looked is not missed
                        self.ready.wait(timeout=min(remaining, CLAIM_RECHECK_SECONDS))
        finally:
            with self.ready:
                self._warm_claims -= warm

    def _claim_one(self, agent: str, build: SpecBuilder) -> JobSpec | None:
        with transaction(self.sessions) as session:
            job = session.scalars(
                select(RunJob)
                .join(Run, Run.id == RunJob.run_id)
                .where(RunJob.state == states.QUEUED, Run.state == states.RUNNING)
                .order_by(RunJob.queued_at, RunJob.id)
            ).first()
            if job is None:
                return None
            token = JOB_TOKEN_PREFIX + random.token_urlsafe(32)
            job.token_hash = token_hash(token)
            job.agent = agent
            job.attempt += 1
            job.lease_expires_at = datetime.now(UTC) + self.lease
            states.transition(job, states.RUNNING)
            spec = build(session, job, token)
            self.remember(job.id, secret_values(spec))
            return spec

    def notify_ready(self) -> None:
        """Wake the agents waiting in `claim`."""
        with self.ready:
            self._readied += 1
            self.ready.notify_all()

    def wake_claims(self) -> None:
        """Wake the waiting claims without a job to look for: a claim whose `cancel` was set then ends (the others
        look at the queue once more and wait again)."""
        with self.ready:
            self.ready.notify_all()

    # -- leases ------------------------------------------------------------------------------
    def renew(self, job: RunJob, now: datetime | None = None) -> None:
        """A heartbeat: the running job stays its agent's for another lease."""
        job.lease_expires_at = (now or datetime.now(UTC)) + self.lease

    @staticmethod
    def running(session: Session, job_id: int, now: datetime | None = None) -> RunJob:
        """The job `job_id` if it is running and within its lease; 404/409 otherwise."""
        job = session.get(RunJob, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.state != states.RUNNING:
            raise Conflict(f"job {job_id} is {job.state}, not running")
        if job.lease_expires_at is not None and job.lease_expires_at < (now or datetime.now(UTC)):
            # no heartbeat within the lease: the job is no longer its agent's, even if the scheduler has
            # not failed it yet (it will, as "agent lost"); the agent must not revive or complete it
            raise Conflict(f"job {job_id} lost its lease: agent {job.agent or '?'} sent no heartbeat in time")
        return job

    def expire_leases(self, now: datetime | None = None) -> list[int]:
        """Fail the running jobs whose lease has passed (as "agent lost"); returns their ids."""
        when = now or datetime.now(UTC)
        with transaction(self.sessions) as session:
            lost = list(
                session.scalars(select(RunJob).where(RunJob.state == states.RUNNING, RunJob.lease_expires_at < when))
            )
            for job in lost:
                self.fail_lost(
                    session, job, f"{AGENT_LOST}: agent {job.agent or '?'} stopped reporting (its lease expired)"
                )
            return [job.id for job in lost]

    def fail_lost(self, session: Session, job: RunJob, message: str) -> None:
        """Fail a running job whose agent is gone: its token stops working, its secrets are dropped."""
        job.message = message
        job.token_hash = None
        for step in session.scalars(select(RunStep).where(RunStep.job_id == job.id)):
            if step.state == states.RUNNING:
                states.transition(step, states.FAILED)
            elif not states.is_final(step.state):
                states.transition(step, states.SKIPPED)
        states.transition(job, states.FAILED)
        self.forget(job.id)

    # -- job secrets -------------------------------------------------------------------------
    def remember(self, job_id: int, values: Iterable[str]) -> None:
        with self._secrets_lock:
            self._secrets[job_id] = set(values)

    def secrets_of(self, job_id: int, compute: SecretsOf) -> set[str]:
        """The secret values of a job. `compute(job_id)` finds them for a job this process never saw the
        spec of (claimed before a server restart); they are held only while the job is running, so a
        late report about an ended job is still masked without its secrets being kept."""
        with self._secrets_lock:
            known = self._secrets.get(job_id)
        if known is not None:
            return known
        values, running = compute(job_id)
        if not running:
            return values
        with self._secrets_lock:
            return self._secrets.setdefault(job_id, values)

    def forget(self, job_id: int) -> None:
        """Drop a job's secrets: it has ended."""
        with self._secrets_lock:
            self._secrets.pop(job_id, None)

    def held_secrets(self) -> set[int]:
        """The jobs whose secrets this queue holds (for tests and diagnostics)."""
        with self._secrets_lock:
            return set(self._secrets)


def _is_set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()
