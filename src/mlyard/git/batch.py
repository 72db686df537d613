"""Read objects of a bare repository through one long-lived ``git cat-file --batch`` process per repository.

Creating a run resolved its branch (``git rev-parse``) and read its YAML (``git cat-file blob``): two git
processes, ~70 ms of a one-step run on a loaded machine. A ``cat-file --batch`` process answers both over
its pipes in well under a millisecond once started. The readers are bounded (``MAX_READERS``, least
recently used closed first) and each serves one request at a time (a lock); a reader whose repository was
deleted or re-created (another inode), that timed out, or whose answer did not parse is closed, and the
caller falls back to a one-shot git process. Objects and refs written after a reader started are seen:
git looks refs up on disk for each request and re-scans its packs when an object is not found.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import threading
import time
from collections import OrderedDict
from pathlib import Path

MAX_READERS = 16  # repositories with a live reader
MAX_OBJECT_BYTES = 8 * 1024 * 1024  # larger objects are read by a one-shot git process
TIMEOUT_SECONDS = 10.0  # one answer; past it the reader is closed and the caller falls back
IDLE_SECONDS = 300.0  # a reader unused this long is closed when another one is needed


class BatchUnavailable(Exception):
    """The reader cannot answer this request (the caller uses a one-shot git process instead)."""


class _Reader:
    def __init__(self, path: Path, env: dict[str, str], inode: tuple[int, int]) -> None:
        self.path, self.inode = path, inode
        self.lock = threading.Lock()
        self.used = time.monotonic()
        self.proc = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            cwd=path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""

    def close(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=1)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass

    def _read(self, count: int, deadline: float) -> bytes:
        """Exactly ``count`` bytes (or up to a newline when ``count`` is -1) of the answer."""
        stdout = self.proc.stdout
        if stdout is None or stdout.closed:
            raise BatchUnavailable("git cat-file ended")
        fd = stdout.fileno()
        while True:
            if count < 0:
                end = self.buffer.find(b"\n")
                if end >= 0:
                    line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                    return line
                if len(self.buffer) > 4096:
                    raise BatchUnavailable("an answer line too long")
            elif len(self.buffer) >= count:
                data, self.buffer = self.buffer[:count], self.buffer[count:]
                return data
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise BatchUnavailable("git cat-file did not answer in time")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise BatchUnavailable("git cat-file ended")
            self.buffer += chunk

    def ask(self, rev: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of ``rev``, or None when it names no object."""
        stdin = self.proc.stdin
        if stdin is None or stdin.closed or self.proc.poll() is not None:
            raise BatchUnavailable("git cat-file ended")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        try:
            stdin.write(rev.encode("utf-8", "surrogateescape") + b"\n")
            stdin.flush()
        except (OSError, ValueError):
            raise BatchUnavailable("git cat-file ended") from None
        line = self._read(-1, deadline).decode("utf-8", "replace")
        if line.endswith((" missing", " ambiguous")):  # `<rev> missing`: no such object
            return None
        header = line.split(" ")
        if len(header) != 3 or not header[2].isdigit():
            raise BatchUnavailable(f"unexpected answer {' '.join(header)[:80]!r}")
        size = int(header[2])
        if size > MAX_OBJECT_BYTES:
            raise BatchUnavailable("object too large for the batch reader")
        content = self._read(size + 1, deadline)[:-1]  # the content, then a newline
        return header[0], header[1], content


class Readers:
    """The live readers, one per repository, at most ``limit``."""

    def __init__(self, limit: int = MAX_READERS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._readers: OrderedDict[Path, _Reader] = OrderedDict()

    def ask(self, path: Path, rev: str, env: dict[str, str]) -> tuple[str, str, bytes] | None:
        """``rev``'s object in the repository at ``path``; BatchUnavailable when the reader cannot say."""
        if "\n" in rev or "\r" in rev or "\0" in rev:
            raise BatchUnavailable("a revision with a line break")
        try:
            stat = os.stat(path)
        except OSError:
            raise BatchUnavailable("no repository") from None
        reader = self._reader(path, env, (stat.st_dev, stat.st_ino))
        with reader.lock:
            try:
                reader.used = time.monotonic()
                return reader.ask(rev)
            except BatchUnavailable:
                self._drop(path, reader)
                raise

    def _reader(self, path: Path, env: dict[str, str], inode: tuple[int, int]) -> _Reader:
        closing: list[_Reader] = []
        with self._lock:
            reader = self._readers.get(path)
            if reader is not None and (reader.inode != inode or reader.proc.poll() is not None):
                closing.append(self._readers.pop(path))  # the repository was re-created, or git ended
                reader = None
            if reader is None:
                now = time.monotonic()
                for old_path, old in list(self._readers.items()):
                    if now - old.used > IDLE_SECONDS:
                        closing.append(self._readers.pop(old_path))
                while len(self._readers) >= self.limit:
                    closing.append(self._readers.popitem(last=False)[1])
                try:
                    reader = _Reader(path, env, inode)
                except OSError:
                    raise BatchUnavailable("cannot start git cat-file") from None
                self._readers[path] = reader
            self._readers.move_to_end(path)
        for old in closing:
            with old.lock:  # wait for a request in flight on it
                old.close()
        return reader

    def _drop(self, path: Path, reader: _Reader) -> None:
        with self._lock:
            if self._readers.get(path) is reader:
                del self._readers[path]
        reader.close()

    def forget(self, path: Path) -> None:
        """Close the reader of a repository (it is being deleted)."""
        with self._lock:
            reader = self._readers.pop(path, None)
        if reader is not None:
            with reader.lock:
                reader.close()

    def close(self) -> None:
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for reader in readers:
            with reader.lock:
                reader.close()

    def __len__(self) -> int:
        return len(self._readers)


READERS = Readers()
atexit.register(READERS.close)
