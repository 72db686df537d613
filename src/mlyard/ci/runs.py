"""Creating a run row: its number (race-free on SQLite and PostgreSQL) and its initial state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mlyard.ci import states
from mlyard.db.tables import Pipeline, Run
from mlyard.errors import NotFound


def new_run(
    session: Session,
    pipeline_id: int,
    *,
    reason: str,
    ref: str,
    sha: str,
    requested_for: str,
    parameters: dict[str, Any],
    variables: dict[str, str],
    state: str = states.QUEUED,
    push_event_id: int | None = None,
) -> Run:
    number = allocate_number(session, pipeline_id)
    run = Run(
        pipeline_id=pipeline_id,
        number=number,
        reason=reason,
        source_branch=ref,
        source_version=sha,
        requested_for=requested_for,
        state=state,
        parameters=parameters,
        variables=variables,
        push_event_id=push_event_id,
    )
    session.add(run)
    session.flush()
    return run


def allocate_number(session: Session, pipeline_id: int) -> int:
    """The next run number of the pipeline, without a race on SQLite or PostgreSQL.

    The UPDATE takes the pipeline row's write lock (the database's write lock on SQLite) until the
    transaction ends, so concurrent runs of one pipeline get their numbers one after the other; the
    SELECT then reads this transaction's own increment.
    """
    session.execute(
        update(Pipeline).where(Pipeline.id == pipeline_id).values(last_run_number=Pipeline.last_run_number + 1)
    )
    number = session.scalar(select(Pipeline.last_run_number).where(Pipeline.id == pipeline_id))
    if number is None:
        raise NotFound(f"pipeline {pipeline_id} not found; it was deleted")
    return int(number)
