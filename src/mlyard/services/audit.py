"""The audit log: failed logins, token and user changes, repository creation and deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import AuditEntry
from mlyard.services.platform import Platform


def record(
    session: Session, action: str, *, actor: str = "", target: str = "", remote_addr: str = "", **detail: Any
) -> AuditEntry:
    """Add an audit entry to the caller's transaction."""
    entry = AuditEntry(action=action, actor=actor, target=target, remote_addr=remote_addr, detail=detail)
    session.add(entry)
    return entry


def record_now(platform: Platform, action: str, **kwargs: Any) -> None:
    """Write an audit entry in its own transaction (for events outside any other unit of work)."""
    with transaction(platform.sessions) as session:
        record(session, action, **kwargs)


def list_entries(platform: Platform, *, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if action:
            query = query.where(AuditEntry.action == action)
        return [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "remote_addr": e.remote_addr,
                "detail": e.detail,
            }
            for e in session.scalars(query)
        ]
