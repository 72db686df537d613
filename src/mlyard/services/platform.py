"""The handle every use case receives: settings, the session factory and the in-process event bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mlyard.db.engine import make_engine, make_sessionmaker
from mlyard.services.login_failures import LoginFailures
from mlyard.services.runtime import DeploymentRuntime
from mlyard.settings import Settings

Listener = Callable[[list[dict[str, Any]]], None]


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
    _secret_key: bytes | None = field(default=None, repr=False)

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
