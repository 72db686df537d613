"""Platform-wide settings kept in the state database (decided at init)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import Setting
from mlyard.services.platform import Platform
from mlyard.settings import DEFAULT_BRANCH


def get(platform: Platform, key: str, default: str = "") -> str:
    with transaction(platform.sessions) as session:
        row = session.get(Setting, key)
        return row.value if row else default


def put(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def default_branch(platform: Platform) -> str:
    return get(platform, "default_branch", platform.settings.default_branch or DEFAULT_BRANCH)
