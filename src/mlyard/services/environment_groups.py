"""Environments as variable groups: each environment has a variable group named after it holding what a
pipeline needs to reach that environment through standard interfaces, as a team keeps it in the
Library of Azure DevOps:

- `DATABRICKS_HOST` = `<server>/databricks/<env>` and `DATABRICKS_TOKEN` (secret): the Databricks API;
- `MLFLOW_TRACKING_URI` = `<server>/mlflow/<env>` and `MLFLOW_TRACKING_TOKEN` (secret): MLflow;
- `DEPLOY_TARGET` = `mlyard` and `DEPLOY_TARGET_URI` = `mlyard+<server>/<env>`: `mlflow deployments -t`;
- `NOTIFY_WEBHOOK_URL` (secret), when the environment has a notification webhook.

Both tokens are one token of the service identity `env-<env>` with the scopes a pipeline needs
(`TOKEN_SCOPES`), stored encrypted like every secret. These variables are mlyard's: each sync sets
them (the server URL may have changed) and keeps any other variable a team added to the group. A sync
issues a new token only when the group has none that works (missing, revoked, expired); `rotate`
always does. It runs when an environment is created, when its webhook changes, at `mlyard infra sync`
(so at `init`) and at every server start, and is idempotent: an up-to-date group is not written.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import Connection, Environment, VariableGroup
from mlyard.errors import Conflict, NotFound
from mlyard.services import audit, auth, secrets
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

DEPLOY_TARGET = "mlyard"  # the MLflow deployments plugin's target name
WEBHOOK_SETTING = "NOTIFY_WEBHOOK_URL"  # also the secret setting of the environment's service connection
PLAIN = ("DATABRICKS_HOST", "MLFLOW_TRACKING_URI", "DEPLOY_TARGET", "DEPLOY_TARGET_URI")
TOKENS = ("DATABRICKS_TOKEN", "MLFLOW_TRACKING_TOKEN")
MANAGED = frozenset((*PLAIN, *TOKENS, WEBHOOK_SETTING))
# What a pipeline does with the group: read (workspace, registry, runs), deploy code to the workspace
# (workspace:write, not repo:write: no push to the repositories) and act (jobs, models, deployments).
TOKEN_SCOPES = ["repo:read", "workspace:write", "pipelines:run"]
TOKEN_NAME = auth.ENVIRONMENT_TOKEN_NAME  # a token of this name of `env-<env>` is bound to <env>
SERVICE_USER_PREFIX = auth.ENVIRONMENT_USER_PREFIX  # + the environment's name (at most 32 characters)


@dataclass(frozen=True)
class GroupSync:
    """What a sync did to an environment's group (names only, never values)."""

    environment: str
    created: bool
    changed: tuple[str, ...]  # the managed variables whose value changed
    token_issued: bool

    @property
    def written(self) -> bool:
        return self.created or bool(self.changed)


def service_user(env: str) -> str:
    """The service identity owning the environment's token."""
    return SERVICE_USER_PREFIX + env


def plain_values(server_url: str, env: str) -> dict[str, str]:
    """The group's plain variables for a server reached at `server_url` (no trailing slash)."""
    return {
        "DATABRICKS_HOST": f"{server_url}/databricks/{env}",
        "MLFLOW_TRACKING_URI": f"{server_url}/mlflow/{env}",
        "DEPLOY_TARGET": DEPLOY_TARGET,
        "DEPLOY_TARGET_URI": f"{DEPLOY_TARGET}+{server_url}/{env}",  # from any agent, not only this machine
    }


def sync_group(platform: Platform, env: str, *, actor: str = "server", rotate: bool = False) -> GroupSync:
    """Create or update the variable group of environment `env` (see the module's docstring)."""
    try:
        with transaction(platform.sessions) as session:
            return _sync(platform, session, env, actor=actor, rotate=rotate)
    except IntegrityError:  # another sync of the same group at the same time
        raise Conflict(
            f"the variable group of environment {env!r} was changed at the same time by another request: "
            "run the command again"
        ) from None


def sync_all(platform: Platform, *, actor: str = "server") -> list[GroupSync]:
    """Sync the group of every environment (server start, `mlyard infra sync`)."""
    with transaction(platform.sessions) as session:
        names = list(session.scalars(select(Environment.name).order_by(Environment.id)))
    return [sync_group(platform, name, actor=actor) for name in names]


def rotate_token(platform: Platform, principal: Principal, env: str) -> GroupSync:
    """A new token in the environment's group; the previous one is revoked at once (admin)."""
    principal.require("admin")
    return sync_group(platform, env, actor=principal.username, rotate=True)


def _sync(platform: Platform, session: Session, env: str, *, actor: str, rotate: bool) -> GroupSync:
    if session.scalars(select(Environment.id).where(Environment.name == env)).first() is None:
        raise NotFound(f"environment {env!r} not found; list them with `mlyard environments list`")
    group = session.scalars(select(VariableGroup).where(VariableGroup.name == env)).first()
    created = group is None
    if group is None:
        group = VariableGroup(name=env, variables={}, secrets="", created_by=actor)
        session.add(group)
    plain: dict[str, str] = dict(group.variables or {})
    hidden = secrets.decrypt_map(platform, group.secrets)
    token = hidden.get(TOKENS[0], "")
    issued = rotate or not auth.service_token_works(session, token, username=service_user(env), scopes=TOKEN_SCOPES)
    if issued:
        token = auth.issue_service_token(session, username=service_user(env), name=TOKEN_NAME, scopes=TOKEN_SCOPES,
                                         actor=actor)  # fmt: skip
    wanted_secrets = dict.fromkeys(TOKENS, token)
    webhook = _webhook(platform, session, env)
    if webhook:
        wanted_secrets[WEBHOOK_SETTING] = webhook
    new_plain = {k: v for k, v in plain.items() if k not in MANAGED} | plain_values(platform.settings.url, env)
    new_hidden = {k: v for k, v in hidden.items() if k not in MANAGED} | wanted_secrets
    changed = tuple(sorted(
        name for name in MANAGED
        if (plain.get(name), hidden.get(name)) != (new_plain.get(name), new_hidden.get(name))
    ))  # fmt: skip
    if created or changed:
        group.variables = new_plain
        group.secrets = secrets.encrypt_map(platform, new_hidden)
        audit.record(session, "variablegroup.synced", actor=actor, target=env, created=created, changed=list(changed),
                     token_issued=issued)  # fmt: skip
    return GroupSync(environment=env, created=created, changed=changed, token_issued=issued)


def _webhook(platform: Platform, session: Session, env: str) -> str:
    """The environment's notification webhook: a secret setting of its connection `<env>-connection`."""
    connection = session.scalars(select(Connection).where(Connection.name == f"{env}-connection")).first()
    if connection is None:
        return ""
    return secrets.decrypt_map(platform, connection.secrets).get(WEBHOOK_SETTING, "")
