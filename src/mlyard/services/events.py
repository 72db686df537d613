"""Push events: every ref update of every push, recorded in order and exactly once.

The post-receive hook writes a spool record (fsynced) per push; `ingest` turns it into rows in
one transaction and removes the record. The unique (push_id, seq) key makes a second ingest of
the same record (after a crash between commit and removal) a no-op, and `recover` ingests what
a killed server left behind. Each event row starts "not yet triggered" (`triggered_at` null): the
orchestrator triggers it later and marks it in the transaction that creates its runs (the trigger
outbox, ci/triggers.py). Listeners are only woken after the commit; the git client never waits
for trigger evaluation.

Test hook: with `MLYARD_TEST_EXIT_AFTER_INGEST=1` in its environment the server process exits at once
(`os._exit`, as a kill -9 would) right after recording a push, before anything is triggered. It is
only used by tests/ci/test_outbox.py to put a crash deterministically in that gap.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import PushEvent, Repo, User
from mlyard.git import events as git_events
from mlyard.git.repos import repo_path
from mlyard.git.smart_http import pending_pushes, spool_file
from mlyard.services.platform import Platform

log = logging.getLogger("mlyard.events")
EXIT_AFTER_INGEST = "MLYARD_TEST_EXIT_AFTER_INGEST"  # test hook, see the module docstring


def ingest(platform: Platform, push_id: str) -> list[dict[str, Any]]:
    """Record the spooled push `push_id`; return the new events (empty if none or already recorded)."""
    path = spool_file(platform.settings.spool_dir, push_id)
    if not path.exists():
        return []
    record = git_events.parse_spool(push_id, path.read_text(encoding="utf-8", errors="replace"))
    created: list[dict[str, Any]] = []
    with transaction(platform.sessions) as session:
        requested_for = _requested_for(session, record)
        seen = session.scalars(select(PushEvent.id).where(PushEvent.push_id == push_id)).first()
        repo = session.scalars(select(Repo).where(Repo.name == record.repo)).first()
        if seen is None and repo is not None:
            bare = repo_path(platform.settings.repos_dir, repo.name)
            for seq, update in enumerate(record.updates):
                commits, paths = git_events.describe(bare, update, repo.default_branch)
                row = PushEvent(
                    push_id=push_id,
                    seq=seq,
                    repo=repo.name,
                    ref=update.ref,
                    old_sha=update.old_sha,
                    new_sha=update.new_sha,
                    pusher=record.pusher,
                    requested_for=requested_for,
                    commits=commits,
                    changed_paths=paths,
                )
                session.add(row)
                session.flush()
                created.append(event_dict(row))
    path.unlink(missing_ok=True)
    if created and os.environ.get(EXIT_AFTER_INGEST) == "1":
        log.warning("%s is set: exiting right after recording push %s", EXIT_AFTER_INGEST, push_id)
        os._exit(137)
    for listener in list(platform.push_listeners):
        try:
            listener(created)
        except Exception:  # a listener's bug must not lose the push
            log.exception("push listener failed for push %s", push_id)
    return created


def _requested_for(session: Session, record: git_events.PushRecord) -> str:
    """The person a push was for: `git push -o requested-for=USER`, trusted only from the project creator's
    service user (it pushes a new project's first commit for whoever ran `mlyard create`) and administrators,
    for a user that exists; "" otherwise (the runs it starts are then requested for the pusher)."""
    from mlyard.services.infrastructure import CREATOR_USER

    wanted = [o.split("=", 1)[1].strip() for o in record.options if o.startswith("requested-for=")]
    if not wanted or not wanted[-1] or wanted[-1] == record.pusher:
        return ""
    pusher = session.scalars(select(User).where(User.username == record.pusher)).first()
    if pusher is None or not (pusher.is_admin or pusher.username == CREATOR_USER):
        log.info("push %s: %s may not push for %s; ignored", record.push_id, record.pusher, wanted[-1])
        return ""
    exists = session.scalars(select(User.id).where(User.username == wanted[-1])).first() is not None
    return wanted[-1] if exists else ""


def recover(platform: Platform) -> int:
    """Ingest the pushes a previous process spooled but did not record; return how many events."""
    return sum(len(ingest(platform, push_id)) for push_id in pending_pushes(platform.settings.spool_dir))


def list_events(platform: Platform, repo: str, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        query = (
            select(PushEvent).where(PushEvent.repo == repo, PushEvent.id > after).order_by(PushEvent.id).limit(limit)
        )
        return [event_dict(e) for e in session.scalars(query)]


def event_dict(row: PushEvent) -> dict[str, Any]:
    kind = (
        "delete" if row.new_sha == git_events.ZERO_SHA else "create" if row.old_sha == git_events.ZERO_SHA else "update"
    )
    return {
        "id": row.id,
        "push_id": row.push_id,
        "seq": row.seq,
        "repo": row.repo,
        "ref": row.ref,
        "kind": kind,
        "old_sha": row.old_sha,
        "new_sha": row.new_sha,
        "pusher": row.pusher,
        "requested_for": row.requested_for or row.pusher,
        "commits": row.commits,
        "changed_paths": row.changed_paths,
        "created_at": row.created_at.isoformat(),
    }
