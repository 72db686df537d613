"""Protected resources: service connections, variable groups, environments; permissions to use them.

The first run of a pipeline that uses one waits until `mlyard pipelines permit` (or `runs permit`)
grants it; permission is then remembered per pipeline.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import Connection, Environment, Permission, VariableGroup
from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.names import check_resource_name
from mlyard.services import audit, secrets
from mlyard.services.auth import Principal
from mlyard.services.pipelines import get_row
from mlyard.services.platform import Platform

KINDS = ("connection", "variablegroup", "environment")


def parse_resource(text: str) -> tuple[str, str]:
    """`KIND:NAME` with KIND connection, variablegroup (or variable-group) or environment."""
    kind, sep, name = text.partition(":")
    kind = kind.strip().lower().replace("-", "").replace("_", "")
    if kind == "serviceconnection":
        kind = "connection"
    if not sep or kind not in KINDS or not name.strip():
        raise InvalidInput(
            f"invalid resource {text!r}: use KIND:NAME with KIND one of connection, variablegroup, "
            "environment (e.g. connection:dev-connection)"
        )
    return kind, name.strip()


def create_connection(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    type: str = "generic",
    settings: dict[str, str] | None = None,
    secret_settings: dict[str, str] | None = None,
    update: bool = False,
) -> dict[str, Any]:
    principal.require("admin")
    check_resource_name(name, "service connection")
    with transaction(platform.sessions) as session:
        row = session.scalars(select(Connection).where(Connection.name == name)).first()
        if row is not None and not update:
            raise Conflict(f"service connection {name!r} already exists")
        if row is None:
            row = Connection(name=name, created_by=principal.username)
            session.add(row)
        row.type = type
        row.settings = dict(settings or {})
        row.secrets = secrets.encrypt_map(platform, dict(secret_settings or {}))
        audit.record(session, "connection.saved", actor=principal.username, target=name)
        session.flush()
        return connection_dict(platform, row)


def list_connections(platform: Platform) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        return [connection_dict(platform, r) for r in session.scalars(select(Connection).order_by(Connection.name))]


def get_connection(platform: Platform, name: str) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        return connection_dict(platform, _connection(session, name))


def delete_connection(platform: Platform, principal: Principal, name: str) -> dict[str, Any]:
    principal.require("admin")
    with transaction(platform.sessions) as session:
        row = _connection(session, name)
        info = connection_dict(platform, row)
        session.delete(row)
        audit.record(session, "connection.deleted", actor=principal.username, target=name)
        return info


def connection_settings(platform: Platform, session: Session, name: str) -> tuple[Connection, dict[str, str]]:
    """A connection and its decrypted secret settings (for a job that is allowed to use it)."""
    row = _connection(session, name)
    return row, secrets.decrypt_map(platform, row.secrets)


def _connection(session: Session, name: str) -> Connection:
    row = session.scalars(select(Connection).where(Connection.name == name)).first()
    if row is None:
        raise NotFound(f"service connection {name!r} not found; list them with `mlyard connections list`")
    return row


def connection_dict(platform: Platform, row: Connection) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.type,
        "settings": row.settings,
        "secret_keys": sorted(secrets.decrypt_map(platform, row.secrets)),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def create_group(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    variables: dict[str, str] | None = None,
    secret_variables: dict[str, str] | None = None,
    update: bool = False,
) -> dict[str, Any]:
    principal.require("admin")
    check_resource_name(name, "variable group")
    with transaction(platform.sessions) as session:
        row = session.scalars(select(VariableGroup).where(VariableGroup.name == name)).first()
        if row is not None and not update:
            raise Conflict(f"variable group {name!r} already exists")
        if row is None:
            row = VariableGroup(name=name, created_by=principal.username)
            session.add(row)
        row.variables = dict(variables or {})
        row.secrets = secrets.encrypt_map(platform, dict(secret_variables or {}))
        audit.record(session, "variablegroup.saved", actor=principal.username, target=name)
        session.flush()
        return group_dict(platform, row)


def list_groups(platform: Platform) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        return [group_dict(platform, r) for r in session.scalars(select(VariableGroup).order_by(VariableGroup.name))]


def get_group(platform: Platform, name: str) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        return group_dict(platform, _group(session, name))


def delete_group(platform: Platform, principal: Principal, name: str) -> dict[str, Any]:
    principal.require("admin")
    with transaction(platform.sessions) as session:
        row = _group(session, name)
        info = group_dict(platform, row)
        session.delete(row)
        return info


def group_values(platform: Platform, session: Session, name: str) -> tuple[dict[str, str], dict[str, str]]:
    row = _group(session, name)
    return dict(row.variables), secrets.decrypt_map(platform, row.secrets)


def _group(session: Session, name: str) -> VariableGroup:
    row = session.scalars(select(VariableGroup).where(VariableGroup.name == name)).first()
    if row is None:
        raise NotFound(f"variable group {name!r} not found; list them with `mlyard variable-groups list`")
    return row


def group_dict(platform: Platform, row: VariableGroup) -> dict[str, Any]:
    return {
        "name": row.name,
        "variables": row.variables,
        "secret_variables": sorted(secrets.decrypt_map(platform, row.secrets)),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def exists(session: Session, kind: str, name: str) -> bool:
    table = {"connection": Connection, "variablegroup": VariableGroup, "environment": Environment}[kind]
    return session.scalars(select(table.id).where(table.name == name)).first() is not None


def permitted(session: Session, pipeline_id: int) -> set[tuple[str, str]]:
    return {
        (p.kind, p.resource) for p in session.scalars(select(Permission).where(Permission.pipeline_id == pipeline_id))
    }


def grant(session: Session, pipeline_id: int, kind: str, name: str, *, actor: str) -> bool:
    if not exists(session, kind, name):
        raise NotFound(f"{kind} {name!r} not found")
    if (kind, name) in permitted(session, pipeline_id):
        return False
    session.add(Permission(pipeline_id=pipeline_id, kind=kind, resource=name, granted_by=actor))
    audit.record(session, "permission.granted", actor=actor, target=f"{kind}:{name}", pipeline_id=pipeline_id)
    return True


def permit_pipeline(platform: Platform, principal: Principal, pipeline: str, resource: str) -> dict[str, Any]:
    principal.require("admin")
    kind, name = parse_resource(resource)
    with transaction(platform.sessions) as session:
        row = get_row(session, pipeline)
        added = grant(session, row.id, kind, name, actor=principal.username)
        return {"pipeline": pipeline, "resource": f"{kind}:{name}", "granted": added}


def set_environment(
    platform: Platform, principal: Principal, name: str, *, approval_required: bool | None
) -> dict[str, Any]:
    from mlyard.services.environments import environment_dict

    principal.require("admin")
    with transaction(platform.sessions) as session:
        row = session.scalars(select(Environment).where(Environment.name == name)).first()
        if row is None:
            raise NotFound(f"environment {name!r} not found")
        if approval_required is not None:
            row.approval_required = approval_required
        audit.record(
            session,
            "environment.updated",
            actor=principal.username,
            target=name,
            approval_required=row.approval_required,
        )
        return environment_dict(row)
