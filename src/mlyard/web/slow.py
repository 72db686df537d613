"""Slow reads done off the request: a page that needs one answers at once with a "loading" page that
reloads itself (a meta refresh: no script needed), and shows the result once the background thread has it.

Used where a page may wait seconds: a remote MLflow registry's first use, a deployment's drift report
(which reads its inference table and downloads its baseline profile). Results are kept for `ttl`
seconds; at most MAX_ENTRIES are kept, the oldest finished ones are dropped first, and at most MAX_RUNNING
run at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from mlyard.errors import MlyardError, OperationFailed

MAX_ENTRIES = 64
MAX_RUNNING = 4  # slow reads running at once; more are refused (the machine also runs pipelines)


class Busy(MlyardError):
    """Too many slow reads are running: the page says so instead of starting another thread."""

    http_status = 503


@dataclass
class _Entry:
    started: float
    done: bool = False
    value: Any = None
    error: MlyardError | None = None
    finished: float = 0.0


class Slow:
    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable, work: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, value) when `work`'s result for `key` is there, else (False, seconds since it started) after
        starting it in a thread if it is not running. A failure is raised (its MlyardError) once, then forgotten."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.done and now - entry.finished > self.ttl:
                entry = None
            if entry is None:
                running = sum(not e.done for e in self._entries.values())
                if running >= MAX_RUNNING:
                    raise Busy(f"{running} slow pages are being prepared for other requests: reload this page in a "
                               "few seconds")  # fmt: skip
                self._trim()
                entry = self._entries[key] = _Entry(started=now)
                threading.Thread(target=self._run, args=(entry, work), name="mlyard-web-slow", daemon=True).start()
            if not entry.done:
                return False, now - entry.started
            if entry.error is not None:  # shown once: the next request tries again
                del self._entries[key]
                raise entry.error
        return True, entry.value

    def drop(self, key: Hashable) -> None:
        """Forget `key`'s result (after a change that makes it stale)."""
        with self._lock:
            self._entries.pop(key, None)

    def _run(self, entry: _Entry, work: Callable[[], Any]) -> None:
        try:
            value, error = work(), None
        except MlyardError as exc:
            value, error = None, exc
        except Exception as exc:  # a page must show the failure, never hang on "loading"
            value, error = None, OperationFailed(f"{type(exc).__name__}: {exc}")
        with self._lock:
            entry.value, entry.error, entry.done, entry.finished = value, error, True, time.monotonic()

    def _trim(self) -> None:
        if len(self._entries) < MAX_ENTRIES:
            return
        finished = sorted((k for k, e in self._entries.items() if e.done), key=lambda k: self._entries[k].finished)
        for key in finished[: len(self._entries) - MAX_ENTRIES + 1]:
            del self._entries[key]
