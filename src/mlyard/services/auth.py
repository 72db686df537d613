"""Users, personal access tokens (PATs), authentication and scopes.

A PAT is ``myd_`` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is
stored: a token has enough entropy that a slow hash adds nothing. Checks run on every request,
so revocation and expiry take effect on the very next one.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import AuditEntry, Token, User
from mlyard.errors import AuthenticationError, Conflict, InvalidInput, NotFound, PermissionDenied, TooManyAttempts
from mlyard.names import check_username
from mlyard.services import audit
from mlyard.services.login_failures import LoginFailures
from mlyard.services.platform import Platform
from mlyard.services.principals import Entry
from mlyard.views import TokenView, UserView

TOKEN_PREFIX = "myd_"
SCOPES = ("repo:read", "repo:write", "workspace:write", "pipelines:run", "agent", "tokens", "admin")
# A scope implies the scopes listed here (admin implies everything). `workspace:write` changes the
# environments' workspaces (the Databricks API) without the right to push to every repository.
IMPLIED = {"admin": set(SCOPES), "repo:write": {"repo:read", "workspace:write"}}
# The token of an environment's variable group (services/environment_groups) belongs to the service
# identity `env-<env>` under this name: it reaches that environment's interfaces and no other's.
ENVIRONMENT_USER_PREFIX = "env-"
ENVIRONMENT_TOKEN_NAME = "variable-group"
# A workspace job's token (services/workspace_jobs): `workspace-job-<id>` of `env-<env>`, bound to <env> too,
# issued when the job starts, revoked when it ends, expiring at its timeout.
WORKSPACE_JOB_TOKEN_PREFIX = "workspace-job-"
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_LIFETIME = timedelta(days=3650)  # the longest `expires_in`; no expiry at all is asked by omitting it


@dataclass(frozen=True)
class Principal:
    """Who is calling and with which scopes."""

    user_id: int
    username: str
    is_admin: bool
    token_id: int
    scopes: frozenset[str]
    expires_at: datetime | None = None  # of the token used: tokens it creates cannot outlive it
    environment: str | None = None  # an environment's group token: the one environment it may reach

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require_environment(self, env: str) -> None:
        """Refuse a token bound to another environment (the variable group token of `env-<other>`)."""
        if self.environment is not None and self.environment != env:
            raise PermissionDenied(
                f"the token of environment {self.environment!r} cannot reach environment {env!r}: use the token "
                f"of the variable group {env!r}"
            )

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise PermissionDenied(
                f"token lacks the '{scope}' scope; create one with `mlyard tokens create --name NAME --scope {scope}`"
            )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def effective_scopes(scopes: list[str], *, is_admin: bool) -> frozenset[str]:
    result: set[str] = set()
    for scope in scopes:
        if scope == "admin" and not is_admin:
            continue
        result.add(scope)
        result |= IMPLIED.get(scope, set())
    return frozenset(result)


def environment_of(username: str, token_name: str, *, is_admin: bool) -> str | None:
    """The environment a token is bound to: that of an environment's variable group token or of a workspace
    job's token, else None."""
    if is_admin or not username.startswith(ENVIRONMENT_USER_PREFIX):
        return None
    if token_name == ENVIRONMENT_TOKEN_NAME or is_workspace_job_token(token_name):
        return username[len(ENVIRONMENT_USER_PREFIX) :]
    return None


def workspace_job_token_name(job_id: int) -> str:
    return f"{WORKSPACE_JOB_TOKEN_PREFIX}{int(job_id)}"


def is_workspace_job_token(token_name: str) -> bool:
    number = token_name.removeprefix(WORKSPACE_JOB_TOKEN_PREFIX)
    return token_name.startswith(WORKSPACE_JOB_TOKEN_PREFIX) and number.isdigit() and len(number) <= 18


def check_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidInput(f"a token needs at least one scope; choose from {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '45m', '90s' or a number of days."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in units else "d"
    number = raw[:-1] if raw and raw[-1] in units else raw
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(f"invalid duration {text!r}: use a number with d, h, m or s, e.g. 30d or 12h")
    if value <= 0:
        raise InvalidInput(f"invalid duration {text!r}: it must be positive")
    if value > MAX_LIFETIME / timedelta(**{units[unit]: 1}):
        raise InvalidInput(
            f"invalid duration {text!r}: at most {MAX_LIFETIME.days}d; omit it for a token that does not expire"
        )
    return timedelta(**{units[unit]: value})


def authenticate(platform: Platform, token: str, *, username: str | None = None, remote_addr: str = "") -> Principal:
    """Resolve a PAT to its principal; raise AuthenticationError when it does not work.

    With HTTP Basic the user name is checked against the token's owner. Failures are counted per client
    address (services/login_failures.py): past the limit the address gets TooManyAttempts (429) until
    its window ends, and the audit log has one `login.failed` entry per address and window.
    """
    failures = platform.login_failures
    token_hash = hash_token(token)
    cached = _remembered(platform, token_hash, username, remote_addr)
    if cached is not None:
        return cached
    now = datetime.now(UTC)
    generation = platform.principals.generation  # before the read: a write meanwhile voids what it finds
    with transaction(platform.sessions) as session:
        row = session.scalars(select(Token).where(Token.token_hash == token_hash)).first()
        problem = _token_problem(row, username, now)
        if problem is None:
            assert row is not None
            if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
                row.last_used_at = now
            user = row.user
            scopes = effective_scopes(row.scope_list, is_admin=user.is_admin)
            bound = environment_of(user.username, row.name, is_admin=user.is_admin)
            principal = Principal(user.id, user.username, user.is_admin, row.id, scopes, row.expires_at, bound)
            entry = Entry(principal, row.last_used_at)
        else:
            _audit_failure(session, failures, remote_addr, actor=username or "", reason=problem,
                           token_prefix=token[:8])  # fmt: skip
    if problem is None:
        platform.principals.put(token_hash, entry, generation)  # once committed (the last use written)
        return principal
    raise AuthenticationError(problem)


def _remembered(platform: Platform, token_hash: str, username: str | None, remote_addr: str) -> Principal | None:
    """The principal of a token that worked a moment ago (mlyard.services.principals), without the database;
    None when it must be looked up. An address past its failure limit gets TooManyAttempts all the same."""
    wait = platform.login_failures.retry_after(remote_addr)
    if wait:
        raise TooManyAttempts(
            f"too many failed authentications from {remote_addr or 'this address'}: try again in {wait} s",
            retry_after=wait,
        )
    cached = platform.principals.get(token_hash, datetime.now(UTC), LAST_USED_RESOLUTION)
    if cached is not None and (not username or username == cached.principal.username):
        return cached.principal
    return None


def _audit_failure(session: Session, failures: LoginFailures, remote_addr: str, **detail: str) -> None:
    """One `login.failed` entry per address and window: written by the window's first failure, and
    updated once more when the address reaches the limit."""
    seen = failures.record(remote_addr)
    if seen.first:
        first = audit.record(session, "login.failed", remote_addr=remote_addr, **detail)
        session.flush()
        failures.set_audit_id(remote_addr, first.id)
    elif seen.reached_limit:
        audit_id = failures.audit_id(remote_addr)
        entry = session.get(AuditEntry, audit_id) if audit_id is not None else None
        if entry is not None:
            entry.detail = {**entry.detail, "failures": seen.failures, "throttled": True}


def _token_problem(row: Token | None, username: str | None, now: datetime) -> str | None:
    if row is None:
        return "invalid token"
    if row.revoked_at is not None:
        return "token has been revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "token has expired"
    if username and username != row.user.username:
        return f"token does not belong to user {username!r}"
    return None


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_user(platform: Platform, username: str, *, is_admin: bool = False, actor: str = "") -> UserView:
    check_username(username)
    exists = Conflict(f"user {username!r} already exists")
    try:
        with transaction(platform.sessions) as session:
            if session.scalars(select(User).where(User.username == username)).first():
                raise exists
            user = User(username=username, is_admin=is_admin)
            session.add(user)
            audit.record(session, "user.created", actor=actor, target=username, is_admin=is_admin)
            session.flush()
            return user_view(user)
    except IntegrityError:  # created at the same time by another request
        raise exists from None


def list_users(platform: Platform) -> list[UserView]:
    with transaction(platform.sessions) as session:
        return [user_view(u) for u in session.scalars(select(User).order_by(User.username))]


def user_view(user: User) -> UserView:
    return UserView(id=user.id, username=user.username, is_admin=user.is_admin, created_at=user.created_at.isoformat())


def create_token(
    platform: Platform,
    *,
    username: str,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None = None,
    not_after: datetime | None = None,
    actor: str = "",
) -> TokenView:
    """Create a PAT; the returned view (its `token`) is the only place its secret ever appears.

    Names are unique among a user's tokens that are not revoked. `not_after` is the expiry of the token
    that asks (a token cannot outlive the token that created it): without `expires_in` the new token
    expires with it, and an `expires_in` that ends later is refused.
    """
    scopes = check_scopes(scopes)
    if not name or len(name) > 100:
        raise InvalidInput("a token needs a name of 1 to 100 characters (--name)")
    now = datetime.now(UTC)
    expires_at = now + expires_in if expires_in else not_after
    if not_after is not None and expires_at is not None and expires_at > not_after:
        raise InvalidInput(
            f"a token cannot outlive the token that creates it, which expires at {not_after.isoformat()} "
            f"(in {_lifetime(not_after - now)}): ask for a shorter --expires-in, or omit it to expire with it"
        )
    taken = Conflict(
        f"user {username!r} already has a token named {name!r}: choose another name, or revoke that one first "
        f"(`mlyard tokens revoke {name}`)"
    )
    try:
        with transaction(platform.sessions) as session:
            user = _user(session, username)
            if "admin" in scopes and not user.is_admin:
                raise PermissionDenied(f"user {username!r} is not an administrator and cannot hold the 'admin' scope")
            if session.scalars(select(Token.id).where(*_active_named(user.id, name))).first() is not None:
                raise taken
            secret = new_token_secret()
            row = Token(
                user_id=user.id,
                name=name,
                prefix=secret[:8],
                token_hash=hash_token(secret),
                scopes=" ".join(scopes),
                expires_at=expires_at,
            )
            session.add(row)
            session.flush()
            audit.record(
                session,
                "token.created",
                actor=actor or username,
                target=f"{username}/{name}",
                token_id=row.id,
                scopes=scopes,
            )
            return token_view(row, username, secret=secret)
    except IntegrityError:  # the same name created at the same time by another request
        raise taken from None


def _active_named(user_id: int, name: str) -> tuple[Any, ...]:
    return (Token.user_id == user_id, Token.name == name, Token.revoked_at.is_(None))


def _lifetime(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_tokens(platform: Platform, principal: Principal, *, all_users: bool = False) -> list[TokenView]:
    with transaction(platform.sessions) as session:
        query = select(Token, User.username).join(User).order_by(Token.id)
        if not (all_users and principal.is_admin):
            query = query.where(Token.user_id == principal.user_id)
        return [token_view(tok, uname) for tok, uname in session.execute(query)]


def revoke_token(platform: Platform, principal: Principal, token_ref: str) -> TokenView:
    """Revoke by id or by name: the token in use itself, any of the caller's tokens with the `tokens`
    scope, anyone's with `admin`. A name means the caller's token of that name that is not revoked."""
    with transaction(platform.sessions) as session:
        query = select(Token).join(User)
        if token_ref.isdigit() and len(token_ref) <= 18:
            query = query.where(Token.id == int(token_ref))
        else:
            query = query.where(Token.name == token_ref, Token.user_id == principal.user_id)
        rows = list(session.scalars(query.order_by(Token.revoked_at.is_(None).desc(), Token.id.desc())))
        row = rows[0] if rows else None
        if row is None or (row.user_id != principal.user_id and not principal.has("admin")):
            raise NotFound(f"no token {token_ref!r}; list them with `mlyard tokens list`")
        if row.id != principal.token_id and not (principal.has("tokens") or principal.has("admin")):
            raise PermissionDenied(
                "revoking a token needs the 'tokens' scope (or 'admin'), which the token you use lacks; "
                "use one that has it, or create one with `mlyard tokens create --name NAME --scope tokens`"
            )
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            audit.record(
                session,
                "token.revoked",
                actor=principal.username,
                target=f"{row.user.username}/{row.name}",
                token_id=row.id,
            )
        return token_view(row, row.user.username)


def token_view(row: Token, username: str, *, secret: str | None = None) -> TokenView:
    """The token's view; `secret` only in the answer that created it."""
    now = datetime.now(UTC)
    state = "revoked" if row.revoked_at else "expired" if row.expires_at and row.expires_at <= now else "active"
    return TokenView(
        id=row.id,
        name=row.name,
        user=username,
        prefix=row.prefix,
        scopes=row.scope_list,
        state=state,
        created_at=row.created_at.isoformat(),
        expires_at=row.expires_at.isoformat() if row.expires_at else None,
        revoked_at=row.revoked_at.isoformat() if row.revoked_at else None,
        last_used_at=row.last_used_at.isoformat() if row.last_used_at else None,
        token=secret,
    )


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}; create one with `mlyard users create {username}`")
    return user


@dataclass(frozen=True)
class Credentials:
    username: str | None
    token: str


def parse_authorization(value: str | None) -> Credentials | None:
    """Credentials from `Authorization: Basic base64(user:PAT)` (what git sends) or `Bearer PAT`."""
    if not value:
        return None
    kind, _, rest = value.strip().partition(" ")
    if kind.lower() == "bearer" and rest.strip():
        return Credentials(None, rest.strip())
    if kind.lower() == "basic":
        try:
            user, _, token = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if token:
            return Credentials(user or None, token)
    return None


def authenticate_header(platform: Platform, header: str | None, *, remote_addr: str = "") -> Principal:
    """The principal behind an Authorization header; AuthenticationError when missing or not valid."""
    creds = _credentials(header)
    return authenticate(platform, creds.token, username=creds.username, remote_addr=remote_addr)


def remembered_header(platform: Platform, header: str | None, *, remote_addr: str = "") -> Principal | None:
    """authenticate_header for a token that worked a moment ago, from memory only (no database: an event loop
    may call it); None when authenticate_header must look it up."""
    creds = _credentials(header)
    return _remembered(platform, hash_token(creds.token), creds.username, remote_addr)


def _credentials(header: str | None) -> Credentials:
    creds = parse_authorization(header)
    if creds is None:
        raise AuthenticationError(
            "authentication required: send a personal access token "
            "(Authorization: Bearer TOKEN, or HTTP Basic user:TOKEN)"
        )
    return creds


LOCAL_AGENT_USER = "local-agent"
LOCAL_AGENT_TOKEN = "local-agents"


def local_agent_token(platform: Platform) -> str:
    """A fresh `agent`-scoped token for the server's own agents (the previous one is revoked)."""
    with transaction(platform.sessions) as session:
        if session.scalars(select(User).where(User.username == LOCAL_AGENT_USER)).first() is None:
            session.add(User(username=LOCAL_AGENT_USER, is_admin=False))
    created = replace_token(platform, username=LOCAL_AGENT_USER, name=LOCAL_AGENT_TOKEN, scopes=["agent"],
                            actor="server")  # fmt: skip
    return str(created.token)


def replace_token(platform: Platform, *, username: str, name: str, scopes: list[str], actor: str) -> TokenView:
    """Create the platform's own token `name` of `username`, revoking the one it replaces (names are unique)."""
    with transaction(platform.sessions) as session:
        user = _user(session, username)
        now = datetime.now(UTC)
        for row in session.scalars(select(Token).where(*_active_named(user.id, name))):
            row.revoked_at = now
            audit.record(session, "token.revoked", actor=actor, target=f"{username}/{name}", token_id=row.id)
    return create_token(platform, username=username, name=name, scopes=scopes, actor=actor)


def issue_service_token(
    session: Session, *, username: str, name: str, scopes: list[str], actor: str, expires_at: datetime | None = None
) -> str:
    """In `session`: a new token `name` of the service identity `username` (created when missing, never an
    administrator), revoking the one it replaces, expiring at `expires_at` (None: never). Returns its secret,
    for the caller to store encrypted or hand to the process it is for."""
    scopes = check_scopes(scopes)
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=check_username(username), is_admin=False)
        session.add(user)
        audit.record(session, "user.created", actor=actor, target=username, is_admin=False)
        session.flush()
    revoke_service_token(session, username=username, name=name, actor=actor)
    session.flush()  # the name is free before the new token takes it (unique among active tokens)
    secret = new_token_secret()
    row = Token(user_id=user.id, name=name, prefix=secret[:8], token_hash=hash_token(secret), scopes=" ".join(scopes),
                expires_at=expires_at)  # fmt: skip
    session.add(row)
    session.flush()
    audit.record(session, "token.created", actor=actor, target=f"{username}/{name}", token_id=row.id, scopes=scopes)
    return secret


def revoke_service_token(session: Session, *, username: str, name: str, actor: str) -> int:
    """In `session`: revoke the active token `name` of the service identity `username`; returns how many."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        return 0
    now = datetime.now(UTC)
    rows = list(session.scalars(select(Token).where(*_active_named(user.id, name))))
    for row in rows:
        row.revoked_at = now
        audit.record(session, "token.revoked", actor=actor, target=f"{username}/{name}", token_id=row.id)
    return len(rows)


def service_token_works(session: Session, secret: str, *, username: str, scopes: list[str]) -> bool:
    """Whether `secret` is an active, unexpired token of `username` with exactly `scopes`."""
    if not secret.startswith(TOKEN_PREFIX):
        return False
    row = session.scalars(select(Token).where(Token.token_hash == hash_token(secret))).first()
    return (
        row is not None
        and _token_problem(row, username, datetime.now(UTC)) is None
        and row.scope_list == check_scopes(scopes)
    )
