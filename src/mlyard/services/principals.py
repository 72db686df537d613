"""Tokens authenticated a moment ago, so that each request of a token does not read the database again.

Looking a personal access token up (its row, its user) was about 40% of the server's CPU for a simple
authenticated request (`GET /api/v1/me`, py-spy), and every request authenticates: an agent's claim and
reports, a CLI's polling, a pipeline step's API calls. An entry (the principal, the token's expiry and owner)
answers for its token while:

- no token or user row was written since it was made: a generation counter goes up at every flush and every
  commit of the state database's sessions that adds, changes or deletes one (a token's `last_used_at` alone
  excepted), so a revoked or replaced token, a deleted user or a changed admin flag take effect at the next
  request (the commit's bump also drops an entry read while the write was not committed yet);
- it is younger than MAX_AGE: the state database is this server's alone (the git repositories, logs and
  artifacts live in its home), but a write by another process would be seen within it;
- the token has not expired, and its last use was recorded less than a minute ago (auth.LAST_USED_RESOLUTION:
  otherwise the database path records it).

Failures are never cached (they are counted and audited as before). At most MAX_ENTRIES tokens; when full,
the oldest entry goes. It lives in the server process (one per `Platform`).

`JobTokens` does the same for the tokens of running jobs (an agent's every report and heartbeat, and the
repositories its checkout may read): a token's job, until a session writes any job's token or state (claimed:
a new one; ended, canceled or its lease expired: none), or for MAX_AGE at most.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from mlyard.db.tables import RunJob, Token, User

if TYPE_CHECKING:
    from mlyard.services.auth import Principal

MAX_AGE = 5.0  # seconds
MAX_ENTRIES = 1024


class Remembered:
    """What was read from the database a moment ago, by key. Each entry carries the generation of the read that
    made it; a flush or commit that writes the rows `_writes` watches bumps the generation (voiding them all),
    and an entry older than `max_age` is dropped. At most `max_entries` (the oldest goes first)."""

    def __init__(self, max_age: float = MAX_AGE, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self.generation = 0
        self._entries: OrderedDict[Any, tuple[object, float, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._flag = f"mlyard_written_{type(self).__name__}"

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Bump the generation whenever a session of `sessions` writes what `_writes` watches."""
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "after_commit", self._after_commit)

    def recall(self, key: Any) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, made, generation = entry
            if generation != self.generation or time.monotonic() - made > self.max_age:
                del self._entries[key]
                return None
            return value

    def remember(self, key: Any, value: object, generation: int) -> None:
        """Keep `value`, read from the database at `generation` (taken before the read)."""
        with self._lock:
            if generation != self.generation:
                return  # a watched row was written meanwhile: the read may be stale already
            self._entries[key] = (value, time.monotonic(), generation)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def _writes(self, session: Session) -> bool:
        raise NotImplementedError

    def _after_flush(self, session: Session, _context: Any) -> None:
        if self._writes(session):
            session.info[self._flag] = True
            self.clear()

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(self._flag, False):
            self.clear()


@dataclass(frozen=True)
class Entry:
    principal: Principal  # its username is the token's owner (HTTP Basic names one), its expires_at the token's
    last_used_at: datetime | None


class PrincipalCache(Remembered):
    def get(self, token_hash: str, now: datetime, last_used_within: timedelta) -> Entry | None:
        """The entry of a token that still holds at `now` (timezone-aware UTC), or None."""
        entry = self.recall(token_hash)
        if not isinstance(entry, Entry):
            return None
        expires_at = entry.principal.expires_at
        if (expires_at is not None and expires_at <= now) or entry.last_used_at is None \
                or now - entry.last_used_at > last_used_within:  # fmt: skip
            self.forget(token_hash)
            return None
        return entry

    def put(self, token_hash: str, entry: Entry, generation: int) -> None:
        """Keep `entry`, read from the database at `generation`."""
        self.remember(token_hash, entry, generation)

    def _writes(self, session: Session) -> bool:
        """Whether the flush adds, changes or deletes a token or user (a token's last use alone excepted)."""
        if any(isinstance(obj, (Token, User)) for group in (session.new, session.deleted) for obj in group):
            return True
        tokens = (obj for obj in session.dirty if isinstance(obj, Token))
        changed = any(set(inspect(obj).committed_state) - {"last_used_at"} for obj in tokens)
        return changed or any(isinstance(obj, User) for obj in session.dirty)


class JobIdentity(Protocol):
    """What the agent API's services need of a job: a `JobRef`, or its database row."""

    @property
    def id(self) -> int: ...

    @property
    def run_id(self) -> int: ...


@dataclass(frozen=True)
class JobRef:
    """A running job, as its token names it (what the agent API's routes need of it)."""

    id: int
    run_id: int


class JobTokens(Remembered):
    def get(self, token_hash: str) -> JobRef | None:
        found = self.recall(("job", token_hash))
        return found if isinstance(found, JobRef) else None

    def put(self, token_hash: str, job: JobRef, generation: int) -> None:
        """Keep `job`, read from the database at `generation`."""
        self.remember(("job", token_hash), job, generation)

    def repos(self, token_hash: str) -> frozenset[str] | None:
        """The repositories the job of a token may read (its checkout's git requests), if seen a moment ago."""
        found = self.recall(("repos", token_hash))
        return found if isinstance(found, frozenset) else None

    def put_repos(self, token_hash: str, repos: frozenset[str], generation: int) -> None:
        self.remember(("repos", token_hash), repos, generation)

    def _writes(self, session: Session) -> bool:
        """Whether the flush deletes a job, sets or clears a job's token, or changes a job's state."""
        if any(isinstance(obj, RunJob) for obj in session.deleted):
            return True
        watched = {"token_hash", "state"}
        return any(isinstance(obj, RunJob) and watched & set(inspect(obj).committed_state) for obj in session.dirty)
