"""The stable front ports of deployments: a byte-pipe TCP proxy per deployment, in the server's event loop.

Clients call `http://host:<front port>`; each accepted connection is pinned to the backend (scoring
server port) that was current when it was accepted, and bytes are piped both ways without parsing
HTTP. `route()` switches the backend atomically: new connections go to the new scoring server,
connections already open finish on the old one (the deployment service stops it once they are gone
or after a grace period). Until a front has a backend (right after a server restart), or while the
supervisor replaces a scoring server that died, accepted connections wait instead of failing.

The methods without a leading underscore are called from worker threads (the deployment service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("mlyard.deployments")

_CHUNK = 256 * 1024
_WAIT_FOR_BACKEND = 180.0  # seconds a connection waits for the first backend after a restart
_WAIT_FOR_REPLACEMENT = 60.0  # seconds a connection waits for a backend that refused it to be replaced


class _Front:
    """One listening front port and the backend its new connections go to."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.backend: int | None = None
        self.active: Counter[int] = Counter()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True, backlog=1024)

    def set_backend(self, backend: int | None) -> None:
        self.backend = backend

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for task in list(self.tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            connected = await self._connect()
            if connected is None:
                return
            backend, up_reader, up_writer = connected
            self.active[backend] += 1
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self.active[backend] -= 1
                _close(up_writer)
        finally:
            _close(writer)
            if task is not None:
                self.tasks.discard(task)

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the current backend. Without one (after a server restart) or when it refuses
        (its scoring server died and the supervisor is starting another), wait for the next backend."""
        loop = asyncio.get_running_loop()
        first = loop.time() + _WAIT_FOR_BACKEND
        refused: int | None = None
        replaced_by = 0.0
        while True:
            backend = self.backend
            if backend is None or backend == refused:
                if loop.time() > (first if refused is None else replaced_by):
                    return None
                await asyncio.sleep(0.05)
                continue
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, backend)
            except OSError as exc:
                log.info("deployment backend %s:%d refused a connection (%s): waiting for its replacement",
                         self.host, backend, exc)  # fmt: skip
                refused, replaced_by = backend, loop.time() + _WAIT_FOR_REPLACEMENT
                continue
            return backend, up_reader, up_writer


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (so HTTP/1.0-style bodies end properly)."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            if writer.transport.get_write_buffer_size() > _CHUNK:
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


class FrontProxies:
    """All front ports of this server; thread-safe entry points for the deployment service."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        self.loop = loop
        self.timeout = timeout
        self.fronts: dict[int, _Front] = {}

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)

    def route(self, port: int, backend: int | None, *, host: str = "127.0.0.1") -> None:
        """Listen on `port` (if not yet) and send its new connections to `backend` (None: hold them)."""
        self._call(self._route(port, backend, host))

    async def _route(self, port: int, backend: int | None, host: str) -> None:
        front = self.fronts.get(port)
        if front is None:
            front = _Front(host, port)
            await front.open()
            self.fronts[port] = front
        front.set_backend(backend)

    def connections(self, port: int, backend: int) -> int:
        """Open client connections of front `port` pinned to `backend`."""
        front = self.fronts.get(port)
        return front.active[backend] if front else 0

    def close(self, port: int) -> None:
        """Stop listening on `port` and drop its connections."""
        self._call(self._close(port))

    async def _close(self, port: int) -> None:
        front = self.fronts.pop(port, None)
        if front is not None:
            await front.close()

    async def close_all(self) -> None:
        for port in list(self.fronts):
            await self._close(port)
