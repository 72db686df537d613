"""What a server process holds in memory beside the database, owned by its Platform (no module globals):
the scoring servers it started, the front proxy that routes to them, and their restart history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from mlyard.serving.pool import WarmPool
from mlyard.serving.process import Endpoint


class Router(Protocol):
    """The front proxy (mlyard.background.endpoints.FrontProxies) as the deployments service uses it."""

    def route(self, port: int, backend: int | None, *, host: str = "127.0.0.1") -> None: ...
    def connections(self, port: int, backend: int) -> int: ...
    def close(self, port: int) -> None: ...


@dataclass
class DeploymentRuntime:
    """The deployments' in-memory state of one server process; `guard` protects every field."""

    router: Router | None = None
    pool: WarmPool | None = None  # warm scoring processes (mlyard.serving.pool), while the server runs
    processes: dict[int, Endpoint] = field(default_factory=dict)  # pid -> scoring servers started, not stopped
    reserved: set[int] = field(default_factory=set)  # ports picked but not recorded yet
    restarts: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (env, model) -> restart times
    guard: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)

    @contextmanager
    def locked(self, env: str, model: str) -> Iterator[None]:
        """Serialise the changes of one deployment (deploy, delete, restart)."""
        with self.guard:
            lock = self._locks.setdefault((env, model), threading.Lock())
        with lock:
            yield
