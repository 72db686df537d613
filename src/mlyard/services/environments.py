"""Environments (dev/test/prod by default): each with a workspace, an MLflow registry and serving settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import Environment
from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.names import check_env_name
from mlyard.services import audit, environment_groups
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.settings import Settings

# Each default environment serves models on its own port range, from the settings' `serving_port_base`.
PORT_OFFSET = {"dev": 0, "test": 100, "prod": 200}


def defaults_for(settings: Settings, name: str, index: int) -> dict[str, Any]:
    """Workspace, registry and serving settings of a new environment under the data dir."""
    env_dir = settings.envs_dir / name
    start = settings.serving_port_base
    if not 1024 <= start <= 65535 - 100 * (index + 4):
        raise InvalidInput(
            f"serving_port_base {start} in settings.json leaves no room for environment {name}'s 100 ports: "
            "use a port from 1024 on, at most a few thousand below 65535"
        )
    base = start + PORT_OFFSET.get(name, 300 + 100 * index)
    return {
        "name": name,
        "workspace_uri": (env_dir / "workspace").as_uri(),
        "mlflow_tracking_uri": f"sqlite:///{env_dir / 'mlflow.db'}",
        "serving": {"target": "local", "host": "127.0.0.1", "port_range": [base, base + 99]},
    }


def add_environment(
    session: Session, settings: Settings, name: str, *, actor: str = "", **overrides: Any
) -> Environment:
    check_env_name(name)
    if session.scalars(select(Environment).where(Environment.name == name)).first():
        raise Conflict(f"environment {name!r} already exists")
    count = len(session.scalars(select(Environment.id)).all())
    spec = defaults_for(settings, name, count)
    spec.update({k: v for k, v in overrides.items() if v})
    (settings.envs_dir / name / "workspace").mkdir(parents=True, exist_ok=True)
    row = Environment(**spec)
    session.add(row)
    audit.record(session, "environment.created", actor=actor, target=name)
    session.flush()
    return row


def create_environment(
    platform: Platform, principal: Principal, name: str, *, mlflow_tracking_uri: str = "", workspace_uri: str = ""
) -> dict[str, Any]:
    principal.require("admin")
    try:
        with transaction(platform.sessions) as session:
            row = add_environment(
                session,
                platform.settings,
                name,
                actor=principal.username,
                mlflow_tracking_uri=mlflow_tracking_uri,
                workspace_uri=workspace_uri,
            )
            created = environment_dict(row)
    except IntegrityError:  # created at the same time by another request
        raise Conflict(f"environment {name!r} already exists") from None
    environment_groups.sync_group(platform, name, actor=principal.username)  # its variable group
    for listener in platform.environment_listeners:  # e.g. the server warms the environment's MLflow server
        listener(name)
    return created


def list_environments(platform: Platform) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        return [environment_dict(e) for e in session.scalars(select(Environment).order_by(Environment.id))]


def get_environment(platform: Platform, name: str) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        row = session.scalars(select(Environment).where(Environment.name == name)).first()
        if row is None:
            names = ", ".join(e.name for e in session.scalars(select(Environment).order_by(Environment.id)))
            raise NotFound(f"environment {name!r} not found; existing environments: {names or 'none'}")
        return environment_dict(row)


def environment_dict(row: Environment) -> dict[str, Any]:
    return {
        "name": row.name,
        "workspace_uri": row.workspace_uri,
        "mlflow_tracking_uri": row.mlflow_tracking_uri,
        "serving": row.serving,
        "approval_required": row.approval_required,
        "created_at": row.created_at.isoformat(),
    }
