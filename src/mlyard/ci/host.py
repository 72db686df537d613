"""What the CI layer needs of the server: its settings and its session factory (no process-global state).

`mlyard.services.platform.Platform` has both; the CI layer sees only this narrow protocol, so it never
imports the services above it.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from mlyard.settings import Settings


class Host(Protocol):
    settings: Settings
    sessions: sessionmaker[Session]
