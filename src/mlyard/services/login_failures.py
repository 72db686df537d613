"""Failed authentications per client address: the rate limit (429) and the bounded audit of failures.

Each address has a fixed window (a minute by default) counting the tokens it presented that did not
work. Past `limit` failures in its window, every authentication from the address is refused with 429
until the window ends, whatever the token (otherwise a 200 among the 429s would still tell a guess
right). The table holds at most `max_addresses` addresses; when it is full, windows that have ended go
first, then the oldest. It lives in the server process (one per `Platform`), so a restart clears it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlyard.errors import InvalidInput

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000


@dataclass
class _Window:
    started: float
    failures: int = 0
    audit_id: int | None = None  # the audit entry of this window's failures (one per address and window)


@dataclass(frozen=True)
class Failure:
    """What `LoginFailures.record` saw: the count in the window, and whether this failure opens it."""

    failures: int
    first: bool
    reached_limit: bool  # this failure is the one that makes the address wait


class LoginFailures:
    """The failure windows of client addresses (see module doc); thread-safe."""

    def __init__(
        self,
        limit: int = 20,
        *,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InvalidInput(f"settings.json: auth_failures_per_minute must be a whole number >= 0, not {limit!r}")
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may authenticate again (0: it may now)."""
        if self.limit <= 0:
            return 0
        with self._lock:
            entry = self._current(address)
            if entry is None or entry.failures < self.limit:
                return 0
            return max(1, math.ceil(entry.started + self.window - self._clock()))

    def record(self, address: str) -> Failure:
        """Count one failed authentication of `address`."""
        with self._lock:
            entry = self._current(address)
            if entry is None:
                self._make_room()
                entry = self._windows[address] = _Window(started=self._clock())
            entry.failures += 1
            return Failure(entry.failures, entry.failures == 1, self.limit > 0 and entry.failures == self.limit)

    def audit_id(self, address: str) -> int | None:
        with self._lock:
            entry = self._current(address)
            return entry.audit_id if entry else None

    def set_audit_id(self, address: str, audit_id: int) -> None:
        with self._lock:
            entry = self._current(address)
            if entry is not None:
                entry.audit_id = audit_id

    def __len__(self) -> int:
        return len(self._windows)

    def _current(self, address: str) -> _Window | None:
        entry = self._windows.get(address)
        if entry is not None and self._clock() - entry.started >= self.window:
            del self._windows[address]
            return None
        return entry

    def _make_room(self) -> None:
        if len(self._windows) < self.max_addresses:
            return
        now = self._clock()
        for address in [a for a, w in self._windows.items() if now - w.started >= self.window]:
            del self._windows[address]
        while len(self._windows) >= self.max_addresses:
            del self._windows[next(iter(self._windows))]  # the oldest window
