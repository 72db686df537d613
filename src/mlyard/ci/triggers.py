"""The trigger outbox: push events become CI runs exactly once, even across a crash.

`events.ingest` records each ref update of a push with `triggered_at` null and the git client gets
its answer at once. The orchestrator calls `trigger_pending` on start and on every tick: for each
pending event (oldest first) it reads the pushed YAML of every pipeline of the repo (outside any
transaction), then in ONE transaction claims the event (`UPDATE ... WHERE triggered_at IS NULL`),
creates the runs and folds batched pushes. A crash before the commit leaves the event pending (it
is triggered again after the restart); after the commit the event is marked: no run is lost and
none is created twice.

A pipeline whose YAML is in the pushed commit but does not load gets a failed run carrying the
diagnostics (file:line:col), as Azure DevOps shows one, instead of a silent push.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mlyard.ci import sources, states
from mlyard.ci.host import Host
from mlyard.ci.runs import new_run
from mlyard.db.engine import transaction
from mlyard.db.tables import Pipeline, PushEvent, Run
from mlyard.errors import NotFound
from mlyard.git.repos import ZERO_SHA
from mlyard.pipelines import PipelineError, trigger_decision
from mlyard.protocol import Reason

log = logging.getLogger("mlyard.triggers")
BATCH = 50  # pending events read at once
ROUNDS = 20  # batches per call (per scheduler tick): the rest on the next tick
INVALID_PREFIX = "the pipeline is invalid"


@dataclass(frozen=True)
class PendingEvent:
    id: int
    repo: str
    ref: str
    new_sha: str
    pusher: str
    changed_paths: tuple[str, ...]
    message: str  # the pushed commits' messages (for [skip ci])
    recorded_at: datetime  # pipelines registered later are not triggered by it


@dataclass(frozen=True)
class Outcome:
    """What the pushed YAML of one pipeline asks for: a run (maybe batched), a failed run, or nothing."""

    pipeline_id: int
    run: bool
    batch: bool = False
    errors: tuple[str, ...] = ()


def pending(session: Session, limit: int = BATCH) -> list[PendingEvent]:
    rows = session.scalars(
        select(PushEvent).where(PushEvent.triggered_at.is_(None)).order_by(PushEvent.id).limit(limit)
    )
    return [
        PendingEvent(
            id=row.id,
            repo=row.repo,
            ref=row.ref,
            new_sha=row.new_sha,
            pusher=row.requested_for or row.pusher,  # the person a service user pushed for (the creator's push)
            changed_paths=tuple(row.changed_paths),
            message="\n".join(c.get("message", "") for c in row.commits),
            recorded_at=row.created_at,
        )
        for row in rows
    ]


def trigger_pending(platform: Host) -> list[int]:
    """Trigger every pending push event, oldest first; returns the ids of the runs created."""
    created: list[int] = []
    failed: set[int] = set()
    for _ in range(ROUNDS):
        with transaction(platform.sessions) as session:
            events = [e for e in pending(session, BATCH + len(failed)) if e.id not in failed]
        for event in events:
            try:
                created += trigger_event(platform, event)
            except Exception:  # one bad event must not hold back the others; it stays pending
                log.exception("triggering push event %d failed; retried on the next tick", event.id)
                failed.add(event.id)
        if len(events) < BATCH:
            break
    return created


def trigger_event(platform: Host, event: PendingEvent) -> list[int]:
    """Evaluate the triggers of one event and, in one transaction, mark it and create its runs."""
    outcomes: list[Outcome] = []
    if event.new_sha != ZERO_SHA:
        with transaction(platform.sessions) as session:
            candidates = [
                (p.id, p.name, p.yaml_path)
                # only the pipelines that existed when the push was recorded: triggering may lag behind a push
                # (a busy server), and a pipeline registered after it was not there to be triggered
                for p in session.scalars(
                    select(Pipeline)
                    .where(Pipeline.repo == event.repo, Pipeline.created_at <= event.recorded_at)
                    .order_by(Pipeline.id)
                )
            ]
        outcomes = [evaluate(platform, event, pid, name, path) for pid, name, path in candidates]
    created: list[int] = []
    with transaction(platform.sessions) as session:
        claimed = session.execute(
            update(PushEvent)
            .where(PushEvent.id == event.id, PushEvent.triggered_at.is_(None))
            .values(triggered_at=datetime.now(UTC))
        )
        if getattr(claimed, "rowcount", 0) != 1:  # another process triggered it meanwhile
            return []
        for outcome in outcomes:
            if session.get(Pipeline, outcome.pipeline_id) is None:  # deleted since
                continue
            run_id = _apply(session, event, outcome)
            if run_id is not None:
                created.append(run_id)
    return created


def evaluate(platform: Host, event: PendingEvent, pipeline_id: int, name: str, yaml_path: str) -> Outcome:
    try:
        loaded = sources.load_at(platform, event.repo, event.new_sha, yaml_path)
    except NotFound:  # the pipeline's file is not in this commit: nothing to run
        return Outcome(pipeline_id, run=False)
    except PipelineError as exc:
        log.info("push %s to %s: pipeline %s is invalid: %s", event.ref, event.repo, name, exc.message)
        return Outcome(pipeline_id, run=False, errors=tuple(exc.errors or [exc.message]))
    decision = trigger_decision(loaded, event.ref, list(event.changed_paths), event.message)
    if not decision.run:
        log.info("no run of pipeline %s for %s: %s", name, event.ref, decision.reason)
        return Outcome(pipeline_id, run=False)
    return Outcome(pipeline_id, run=True, batch=bool(getattr(loaded.trigger, "batch", False)))


def _apply(session: Session, event: PendingEvent, outcome: Outcome) -> int | None:
    if outcome.errors:
        run = new_run(
            session,
            outcome.pipeline_id,
            reason=Reason.INDIVIDUAL_CI,
            ref=event.ref,
            sha=event.new_sha,
            requested_for=event.pusher,
            parameters={},
            variables={},
            push_event_id=event.id,
        )
        run.errors = list(outcome.errors)
        run.message = f"{INVALID_PREFIX}:\n" + "\n".join(outcome.errors)
        states.transition(run, states.FAILED)
        return run.id
    if not outcome.run:
        return None
    busy = False
    if outcome.batch:
        waiting = _batched_waiting(session, outcome.pipeline_id, event.ref)
        if waiting is not None:  # fold this push into the run already waiting for the current one
            waiting.source_version, waiting.push_event_id = event.new_sha, event.id
            return waiting.id
        busy = _active_run(session, outcome.pipeline_id, event.ref) is not None
    run = new_run(
        session,
        outcome.pipeline_id,
        reason=Reason.BATCHED_CI if outcome.batch else Reason.INDIVIDUAL_CI,
        ref=event.ref,
        sha=event.new_sha,
        requested_for=event.pusher,
        parameters={},
        variables={},
        state=states.NOT_STARTED if busy else states.QUEUED,
        push_event_id=event.id,
    )
    return run.id


def _batched_waiting(session: Session, pipeline_id: int, ref: str) -> Run | None:
    return session.scalars(
        select(Run).where(Run.pipeline_id == pipeline_id, Run.source_branch == ref, Run.state == states.NOT_STARTED)
    ).first()


def _active_run(session: Session, pipeline_id: int, ref: str) -> Run | None:
    return session.scalars(
        select(Run).where(Run.pipeline_id == pipeline_id, Run.source_branch == ref, Run.state.in_(states.ACTIVE))
    ).first()
