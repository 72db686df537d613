"""Protected resources: service connections, variable groups, environments; permissions to use them.

The first run of a pipeline that uses one waits until `mlyard pipelines permit` (or `runs permit`)
grants it; permission is then remembered per pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.ci.permissions import exists, permitted
from mlyard.db.engine import transaction
from mlyard.db.tables import Connection, Environment, Permission, VariableGroup
from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.names import check_resource_name
from mlyard.services import audit, environment_groups, secrets
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


@dataclass(frozen=True)
class SecretStore:
    """A kind of protected resource with plain and encrypted values: service connections (settings)
    and variable groups (variables). One implementation serves both."""

    table: type[Connection] | type[VariableGroup]
    label: str  # in messages: "service connection"
    audit: str  # audit action prefix: "connection"
    list_command: str  # what to run to see them
    plain: str  # the column (and dict key) of plain values: "settings"
    secret_keys: str  # the dict key listing the names of secret values: "secret_keys"

    def save(
        self,
        platform: Platform,
        principal: Principal,
        name: str,
        *,
        plain: dict[str, str] | None,
        secret: dict[str, str] | None,
        update: bool,
        **columns: Any,
    ) -> dict[str, Any]:
        principal.require("admin")
        check_resource_name(name, self.label)
        exists = Conflict(f"{self.label} {name!r} already exists; pass --update to change it")
        try:
            with transaction(platform.sessions) as session:
                found = session.scalars(select(self.table).where(self.table.name == name)).first()
                row = cast("Connection | VariableGroup | None", found)
                if row is not None and not update:
                    raise exists
                if row is None:
                    row = self.table(name=name, created_by=principal.username)
                    session.add(row)
                for column, value in columns.items():
                    setattr(row, column, value)
                setattr(row, self.plain, dict(plain or {}))
                row.secrets = secrets.encrypt_map(platform, dict(secret or {}))
                audit.record(session, f"{self.audit}.saved", actor=principal.username, target=name)
                session.flush()
                return self.as_dict(platform, row)
        except IntegrityError:  # created at the same time by another request
            if update:
                raise Conflict(f"{self.label} {name!r} was created at the same time by another request; "
                               "run the command again to update it") from None
            raise exists from None

    def list(self, platform: Platform) -> list[dict[str, Any]]:
        with transaction(platform.sessions) as session:
            rows = session.scalars(select(self.table).order_by(self.table.name))
            return [self.as_dict(platform, row) for row in rows]

    def get(self, platform: Platform, name: str) -> dict[str, Any]:
        with transaction(platform.sessions) as session:
            return self.as_dict(platform, self.row(session, name))

    def delete(self, platform: Platform, principal: Principal, name: str) -> dict[str, Any]:
        principal.require("admin")
        with transaction(platform.sessions) as session:
            row = self.row(session, name)
            info = self.as_dict(platform, row)
            session.delete(row)
            audit.record(session, f"{self.audit}.deleted", actor=principal.username, target=name)
            return info

    def values(self, platform: Platform, session: Session, name: str) -> tuple[Any, dict[str, str], dict[str, str]]:
        """The row, its plain values and its decrypted secret values (for a job allowed to use it)."""
        row = self.row(session, name)
        return row, dict(getattr(row, self.plain)), secrets.decrypt_map(platform, row.secrets)

    def row(self, session: Session, name: str) -> Any:
        row = session.scalars(select(self.table).where(self.table.name == name)).first()
        if row is None:
            raise NotFound(f"{self.label} {name!r} not found; list them with `{self.list_command}`")
        return row

    def as_dict(self, platform: Platform, row: Any) -> dict[str, Any]:
        doc = {"name": row.name}
        if self.table is Connection:
            doc["type"] = row.type
        doc[self.plain] = getattr(row, self.plain)
        doc[self.secret_keys] = sorted(secrets.decrypt_map(platform, row.secrets))
        return {**doc, "created_by": row.created_by, "created_at": row.created_at.isoformat()}


CONNECTIONS = SecretStore(Connection, "service connection", "connection", "mlyard connections list", "settings",
                          "secret_keys")  # fmt: skip
GROUPS = SecretStore(VariableGroup, "variable group", "variablegroup", "mlyard variable-groups list", "variables",
                     "secret_variables")  # fmt: skip


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
    return CONNECTIONS.save(platform, principal, name, plain=settings, secret=secret_settings, update=update, type=type)


def create_group(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    variables: dict[str, str] | None = None,
    secret_variables: dict[str, str] | None = None,
    update: bool = False,
) -> dict[str, Any]:
    return GROUPS.save(platform, principal, name, plain=variables, secret=secret_variables, update=update)


def connection_settings(platform: Platform, session: Session, name: str) -> tuple[Connection, dict[str, str]]:
    """A connection and its decrypted secret settings (for a job that is allowed to use it)."""
    row, _plain, secret = CONNECTIONS.values(platform, session, name)
    return row, secret


def group_values(platform: Platform, session: Session, name: str) -> tuple[dict[str, str], dict[str, str]]:
    _row, plain, secret = GROUPS.values(platform, session, name)
    return plain, secret


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


WEBHOOK_SETTING = environment_groups.WEBHOOK_SETTING


def set_environment(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    approval_required: bool | None,
    notify_webhook: str | None = None,
) -> dict[str, Any]:
    """Change an environment's checks and its notification webhook ("" removes it).

    The webhook is a secret setting of the environment's service connection, so the pipelines that use
    the connection (model CI) see it as `NOTIFY_WEBHOOK_URL` and logs show it as `***`; the
    environment's variable group gets it too.
    """
    from mlyard.services.environments import environment_dict

    principal.require("admin")
    if notify_webhook:
        check_webhook(notify_webhook)
    with transaction(platform.sessions) as session:
        row = session.scalars(select(Environment).where(Environment.name == name)).first()
        if row is None:
            raise NotFound(f"environment {name!r} not found; list them with `mlyard environments list`")
        if approval_required is not None:
            row.approval_required = approval_required
        connection = session.scalars(select(Connection).where(Connection.name == f"{name}-connection")).first()
        hidden = secrets.decrypt_map(platform, connection.secrets) if connection is not None else {}
        if notify_webhook is not None:
            if connection is None:
                raise NotFound(
                    f"environment {name!r} has no service connection {name}-connection to keep the webhook in: "
                    "run `mlyard infra sync`"
                )
            hidden.pop(WEBHOOK_SETTING, None)
            if notify_webhook:
                hidden[WEBHOOK_SETTING] = notify_webhook
            connection.secrets = secrets.encrypt_map(platform, hidden)
        audit.record(
            session,
            "environment.updated",
            actor=principal.username,
            target=name,
            approval_required=row.approval_required,
            notify_webhook="unchanged" if notify_webhook is None else ("set" if notify_webhook else "removed"),
        )
        answer = {**environment_dict(row), "notify_webhook": WEBHOOK_SETTING in hidden}
    if notify_webhook is not None:  # the environment's variable group holds the webhook too
        environment_groups.sync_group(platform, name, actor=principal.username)
    return answer


def check_webhook(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise InvalidInput(
            f"notification webhook {url!r} is not an http:// or https:// URL: pass the webhook's URL "
            "(e.g. https://hooks.slack.com/services/...), or '' to remove it"
        )
