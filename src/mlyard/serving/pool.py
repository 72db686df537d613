"""A bounded pool of warm scoring processes: a deployment starts in a process that has already imported MLflow.

Importing MLflow, pandas, scikit-learn and skops takes seconds; a scoring server's own work (resolve the
version, load the model, bind) takes a fraction of that. The pool keeps at most `size` processes
`python -m mlyard.serving --standby` (mlyard.serving.server.standby) that have done the imports and wait for
an assignment. `take` hands one out (it becomes that deployment's scoring server, in its own process group,
and exits with it) and starts its replacement in the background.

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
import select
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlyard.serving.limits import _THREAD_POOLS

log = logging.getLogger("mlyard.serving.pool")

MAX_SIZE = 8
# Variables that act when a module is imported: a warm process serves only deployments that agree on them.
IMPORT_TIME_VARIABLES = (*_THREAD_POOLS, "PYTHONPATH", "PYTHONHASHSEED")


def import_key(python: str, env: Mapping[str, str]) -> tuple[str, ...]:
    return (python, *(env.get(name, "") for name in IMPORT_TIME_VARIABLES))


@dataclass
class Standby:
    """One warm process and the read end of its readiness pipe (`warm`, later `ready`)."""

    process: subprocess.Popen[bytes]
    ready_fd: int
    key: tuple[str, ...]
    warm: bool = False

    def poll_warm(self) -> bool:
        """True once the process said `warm` (reads the pipe without blocking)."""
        if not self.warm and select.select([self.ready_fd], [], [], 0)[0]:
            line = _read_line(self.ready_fd)
            self.warm = line == b"warm"
        return self.warm

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.ready_fd)
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


@dataclass
class WarmPool:
    """At most `size` warm processes of `python` with environment `env` (see the module's docstring)."""

    python: str
    env: dict[str, str]
    size: int = 1
    log_file: Path | None = None
    _idle: list[Standby] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False
    _handed_out: int = 0
    _cold: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_SIZE:
            raise ValueError(f"warm pool size {self.size}: use 0 to {MAX_SIZE}")
        self.key = import_key(self.python, self.env)

    def fill(self) -> None:
        """Start processes until `size` are idle (at most `size` starts)."""
        for _ in range(self.size):
            with self._lock:
                if self._closed or len(self._idle) >= self.size:
                    return
            try:
                standby = self._spawn()
            except OSError as exc:
                log.warning("scoring warm pool: could not start a process: %s", exc)
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
        with self._lock:
            if self.key == import_key(python, env):
                while self._idle and found is None:
                    candidate = self._idle.pop(0)
                    if candidate.process.poll() is None:
                        found = candidate
                    else:
                        candidate.discard()
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
            warm = sum(s.poll_warm() for s in idle)
            return PoolStatus(self.size, warm, len(idle) - warm, self._handed_out, self._cold)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for standby in idle:
            standby.discard()

    def _spawn(self) -> Standby:
        read, write = os.pipe()
        try:
            output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
            try:
                process = subprocess.Popen(
                    [self.python, "-m", "mlyard.serving", "--standby", "--ready-fd", str(write)],
                    stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, env=self.env,
                    pass_fds=(write,), start_new_session=True, cwd=str(self.log_file.parent) if self.log_file else "/",
                )  # fmt: skip
            finally:
                if not isinstance(output, int):
                    output.close()
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return Standby(process, read, self.key)


def _read_line(fd: int, limit: int = 64) -> bytes:
    """One short line from a pipe (the protocol's lines are `warm` and `ready`); b"" at end of file."""
    data = b""
    while len(data) < limit:
        chunk = os.read(fd, 1)
        if not chunk or chunk == b"\n":
            break
        data += chunk
    return data
