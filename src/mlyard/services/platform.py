"""The handle every use case receives: settings, the session factory and the in-process event bus."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mlyard.db.engine import make_engine, make_sessionmaker
from mlyard.services.login_failures import LoginFailures
from mlyard.services.principals import JobTokens, PrincipalCache
from mlyard.services.runtime import DeploymentRuntime
from mlyard.settings import Settings

Listener = Callable[[list[dict[str, Any]]], None]


class WarmSandboxes(Protocol):
    """Sandboxes that imported the ML stack before their job was known, all on one `slot` folder (the server's
    `mlyard.agent.warm.WarmPool` for workspace jobs: this layer does not import the agent's)."""

    slot: Path

    def take(self) -> subprocess.Popen[bytes] | None: ...  # one whose imports are done, or None

    def give(self, proc: subprocess.Popen[bytes], argv: list[str], *, cwd: Path, env: dict[str, str]) -> None: ...

    def hold(self) -> None: ...  # a job runs: none starts

    def release(self) -> None: ...  # the job ended: replace the one it used

    def check_empty(self) -> None: ...  # after a job: anything left in the slot replaces them

    def ready(self) -> int: ...  # how many wait with their imports done (/health)

    def stop(self) -> None: ...  # the server stops


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    push_listeners: list[Listener] = field(default_factory=list)
    environment_listeners: list[Callable[[str], None]] = field(default_factory=list)  # called with a new env's name
    deployments: DeploymentRuntime = field(default_factory=DeploymentRuntime)  # scoring servers of this process
    orchestrator: Any = None  # the scheduler (ci.orchestrator.Orchestrator) when a server runs
    # When a server runs: (env, tracking URI) -> the Unix socket of the environment's MLflow server, started if
    # needed (api.mlflow_mount); None where MLflow is used in-process (services.models).
    mlflow_socket: Callable[[str, str], Path | None] | None = None
    login_failures: LoginFailures = field(default_factory=LoginFailures)  # failed logins per client address
    # When a server runs: warm sandboxes for workspace jobs (services.workspace_jobs), and the lock of their slot,
    # which holds one job's folder at a time (a warm sandbox sees the whole slot)
    job_sandboxes: WarmSandboxes | None = None
    job_slot: threading.Lock = field(default_factory=threading.Lock)
    job_ended: threading.Event = field(default_factory=threading.Event)  # a workspace job ended (they start then)
    principals: PrincipalCache = field(default_factory=PrincipalCache)  # tokens authenticated a moment ago
    job_tokens: JobTokens = field(default_factory=JobTokens)  # running jobs' tokens seen a moment ago
    _secret_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.principals.watch(self.sessions)
        self.job_tokens.watch(self.sessions)

    def secret_key(self) -> bytes:
        """The server's secret key (read once): for keys derived from it, e.g. the web UI's form tokens."""
        if self._secret_key is None:
            self._secret_key = self.settings.secret_key_file.read_bytes()
        return self._secret_key

    def close(self) -> None:
        self.engine.dispose()


def open_platform(settings: Settings) -> Platform:
    """Connect to the (already migrated) state database of `settings`."""
    engine = make_engine(settings.db_url)
    failures = LoginFailures(settings.auth_failures_per_minute)
    return Platform(settings=settings, engine=engine, sessions=make_sessionmaker(engine), login_failures=failures)
