"""A bounded pool of warm scoring processes: a deployment starts in a process that has already imported MLflow.

Importing MLflow, pandas, scikit-learn and skops takes seconds; a scoring server's own work (resolve the
version, load the model, bind) takes a fraction of that. The pool keeps ONE zygote,
`python -m mlyard.serving --zygote` (mlyard.serving.zygote), that has done the imports once, and at most
`size` standbys forked from it that wait for an assignment. `take` hands one out (it becomes that deployment's
scoring server, in its own process group, and exits with it) and forks its replacement in the background: a
fork takes milliseconds, so the next deployment finds a warm standby again at once. The zygote is started with
the pool's environment (never the mlyard server's); a zygote that is gone (killed) is started again at the next
fill, and its running forks keep serving. A zygote that exits before it is warm is not started again: every
deployment then starts cold (its log says why).

Memory: the zygote costs what one standby did (~250 MB resident); its forks share its pages copy-on-write and
own only what they write (their model, their requests, the pages their reference counts touch).

Isolation: a warm process has loaded no model, opened no store and read no deployment's data; it serves one
deployment only and is never given back. It is used only when the variables that act at import time (the
native thread pools' sizes, PYTHONPATH) and the Python are the ones the deployment would get; otherwise the
deployment starts cold. `status()` is what the mlyard server reports (`/health`, its log).

This module imports neither MLflow nor the app.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlyard.serving.limits import _THREAD_POOLS
from mlyard.serving.zygote import Forked, Zygote

log = logging.getLogger("mlyard.serving.pool")

MAX_SIZE = 8
# Variables that act when a module is imported: a warm process serves only deployments that agree on them.
IMPORT_TIME_VARIABLES = (*_THREAD_POOLS, "PYTHONPATH", "PYTHONHASHSEED")
# The longest a deployment waits for a zygote that is still importing (then it starts cold): a cold start does
# the same imports from nothing, 5-10 s of CPU on a 2-core machine, so a zygote this late is stuck.
TAKE_WAIT_SECONDS = 60.0


def import_key(python: str, env: Mapping[str, str]) -> tuple[str, ...]:
    return (python, *(env.get(name, "") for name in IMPORT_TIME_VARIABLES))


@dataclass
class Standby:
    """One warm process (a fork of the pool's zygote) and the read end of its readiness pipe (later `ready`)."""

    process: Forked
    ready_fd: int
    key: tuple[str, ...]

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.ready_fd)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)


@dataclass(frozen=True)
class PoolStatus:
    size: int
    warm: int
    starting: int
    handed_out: int
    cold_starts: int
    zygote_warm: bool  # the fork server has imported and forks standbys (False: starting, gone or failed)
    started: bool  # a zygote was started (False: nobody asked for a process yet; the server asks once there is
    # something to serve: a registered model or a deployment)


@dataclass
class WarmPool:
    """At most `size` warm processes of `python` with environment `env`, forked from one zygote (see the module's
    docstring)."""

    python: str
    env: dict[str, str]
    size: int = 1
    log_file: Path | None = None
    warm_timeout: float = 300.0  # the longest `fill` waits for a new zygote's imports
    _idle: list[Standby] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _filling: threading.Lock = field(default_factory=threading.Lock)
    _starting: threading.Lock = field(default_factory=threading.Lock)
    _zygote: Zygote | None = None
    _failed: bool = False  # a zygote exited before it was warm: not started again, every start cold
    _started: bool = False  # a zygote was started once (status: a pool that waits is not one that imports)
    _closed: bool = False
    _handed_out: int = 0
    _cold: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_SIZE:
            raise ValueError(f"warm pool size {self.size}: use 0 to {MAX_SIZE}")
        self.key = import_key(self.python, self.env)

    def fill(self) -> None:
        """Start the zygote if there is none (or it is gone), wait for it to be warm, then fork until `size`
        standbys are idle (at most `size` forks)."""
        if not self.size:
            return
        with self._filling:
            zygote = self._live_zygote()
            if zygote is None:
                return
            if not self._wait_warm(zygote, self.warm_timeout):
                return
            with self._lock:  # standbys that exited while idle (killed, or their stdin closed) are replaced
                dead = [s for s in self._idle if s.process.poll() is not None]
                self._idle = [s for s in self._idle if s not in dead]
            for exited in dead:
                exited.discard()
            for _ in range(self.size):
                with self._lock:
                    if self._closed or len(self._idle) >= self.size:
                        return
                standby = self._fork(zygote)
                if standby is None:
                    return
                with self._lock:
                    if self._closed:
                        standby.discard()
                        return
                    self._idle.append(standby)

    def fill_later(self) -> None:
        threading.Thread(target=self.fill, name="mlyard-serving-pool", daemon=True).start()

    def take(self, python: str, env: Mapping[str, str]) -> Standby | None:
        """A live warm process for a deployment with this Python and environment, or None (start cold)."""
        found = None
        fits = self.key == import_key(python, env)
        with self._lock:
            if fits:
                while self._idle and found is None:
                    candidate = self._idle.pop(0)
                    if candidate.process.poll() is None:
                        found = candidate
                    else:
                        candidate.discard()
        if found is None and self.size and fits:
            # None idle: a fork beats a cold start, also when the zygote is still importing (or is started now,
            # e.g. by the first deployment of a server): a new process would do the same imports from nothing,
            # on the cores the zygote's imports use
            zygote = self._live_zygote()
            if zygote is not None and self._wait_warm(zygote, min(self.warm_timeout, TAKE_WAIT_SECONDS)):
                found = self._fork(zygote)
        with self._lock:
            if found is None:
                self._cold += 1
            else:
                self._handed_out += 1
        if self.size:
            self.fill_later()
        return found

    def status(self) -> PoolStatus:
        with self._lock:
            idle = [s for s in self._idle if s.process.poll() is None]
            zygote = self._zygote
            zygote_warm = zygote is not None and zygote.warm and zygote.alive()
            starting = self.size - len(idle) if zygote is not None and not zygote.warm and zygote.alive() else 0
            return PoolStatus(self.size, len(idle), starting, self._handed_out, self._cold, zygote_warm, self._started)

    def close(self) -> None:
        """Stop the idle standbys and the zygote (the deployments' scoring servers it forked keep running)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            zygote, self._zygote = self._zygote, None
        for standby in idle:
            standby.discard()
        if zygote is not None:
            zygote.close()

    def _wait_warm(self, zygote: Zygote, timeout: float) -> bool:
        """Whether the zygote is warm within `timeout` seconds; one that exited before is not started again."""
        if zygote.wait_warm(timeout):
            return True
        if not self._closed and (zygote.gone or zygote.process.poll() is not None):
            with self._lock:
                failed, self._failed = self._failed, True
            if not failed:
                log.warning("scoring warm pool: the zygote exited before it was warm (code %s; see %s): every "
                            "deployment starts cold", zygote.process.poll(), self.log_file)  # fmt: skip
        return False

    def _fork(self, zygote: Zygote) -> Standby | None:
        try:
            process, ready_fd = zygote.fork()
        except OSError as exc:
            log.warning("scoring warm pool: could not fork a standby: %s", exc)
            return None
        return Standby(process, ready_fd, self.key)

    def _live_zygote(self) -> Zygote | None:
        """The running zygote, a new one when there is none or it is gone; None when closed or failed."""
        with self._starting:  # `fill` and `take` may ask at once: one zygote
            return self._live_or_new_zygote()

    def _live_or_new_zygote(self) -> Zygote | None:
        with self._lock:
            if self._closed or self._failed:
                return None
            if self._zygote is not None and self._zygote.alive():
                return self._zygote
            gone, self._zygote = self._zygote, None
        if gone is not None:
            log.warning("scoring warm pool: the zygote %d is gone (code %s): starting another", gone.process.pid,
                        gone.process.poll())  # fmt: skip
            gone.close(timeout=1)
        self._started = True
        try:
            output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
            try:
                cwd = str(self.log_file.parent) if self.log_file else "/"
                zygote = Zygote.start(self.python, self.env, output=output, cwd=cwd)
            finally:
                if not isinstance(output, int):
                    output.close()
        except OSError as exc:
            log.warning("scoring warm pool: could not start the zygote: %s", exc)
            return None
        with self._lock:
            if self._closed:
                closing = True
            else:
                closing, self._zygote = False, zygote
        if closing:
            zygote.close(timeout=1)
            return None
        return zygote


def _read_line(fd: int, limit: int = 64) -> bytes:
    """One short line from a pipe (the readiness pipe says `ready`); b"" at end of file."""
    data = b""
    while len(data) < limit:
        chunk = os.read(fd, 1)
        if not chunk or chunk == b"\n":
            break
        data += chunk
    return data
