"""The one place where run, stage, job and step states change.

States (:class:`mlyard.protocol.State`, Azure's names): notStarted, queued, waiting, running, and the
final ones succeeded, succeededWithIssues, failed, canceled, skipped. `transition` checks the move against the table,
stamps start and finish times, and refuses anything else (a bug, never a user error).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from mlyard.protocol import FINAL_STATES, State

NOT_STARTED: str = State.NOT_STARTED
QUEUED: str = State.QUEUED
WAITING: str = State.WAITING
RUNNING: str = State.RUNNING
SUCCEEDED: str = State.SUCCEEDED
SUCCEEDED_WITH_ISSUES: str = State.SUCCEEDED_WITH_ISSUES
FAILED: str = State.FAILED
CANCELED: str = State.CANCELED
SKIPPED: str = State.SKIPPED

FINAL = FINAL_STATES
ACTIVE = frozenset({QUEUED, WAITING, RUNNING})
_ANY_FINAL = FINAL

ALLOWED: dict[str, frozenset[str]] = {
    NOT_STARTED: frozenset({QUEUED, WAITING, RUNNING}) | _ANY_FINAL,
    QUEUED: frozenset({WAITING, RUNNING}) | _ANY_FINAL,
    WAITING: frozenset({QUEUED, RUNNING}) | _ANY_FINAL,
    RUNNING: frozenset({WAITING}) | _ANY_FINAL,
}

# Azure's capitalised result names, as the expression status functions and dependencies.X.result use.
AZURE_RESULT: dict[str, str] = {
    SUCCEEDED: "Succeeded",
    SUCCEEDED_WITH_ISSUES: "SucceededWithIssues",
    FAILED: "Failed",
    CANCELED: "Canceled",
    SKIPPED: "Skipped",
}


class Stateful(Protocol):
    state: str
    started_at: datetime | None
    finished_at: datetime | None


class InvalidTransition(RuntimeError):
    pass


def transition(entity: Any, new: str, *, now: datetime | None = None) -> bool:
    """Move `entity` to `new`. Returns False (and changes nothing) if it is already there."""
    old = entity.state
    if old == new:
        return False
    if new not in ALLOWED.get(old, frozenset()):
        raise InvalidTransition(f"{type(entity).__name__} {getattr(entity, 'id', '?')}: {old} -> {new} is not allowed")
    now = now or datetime.now(UTC)
    entity.state = new
    if new == RUNNING and entity.started_at is None:
        entity.started_at = now
    if new in FINAL:
        entity.finished_at = now
    return True


def is_final(state: str) -> bool:
    return state in FINAL


def worst(results: list[str]) -> str:
    """The combined result of children: canceled > failed > succeededWithIssues > succeeded (skipped ignored)."""
    for candidate in (CANCELED, FAILED, SUCCEEDED_WITH_ISSUES):
        if candidate in results:
            return candidate
    if results and all(r == SKIPPED for r in results):
        return SKIPPED
    return SUCCEEDED
