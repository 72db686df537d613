"""`mlyard users`, `mlyard tokens`, `mlyard audit`, `mlyard whoami`, `mlyard status`."""

from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client

users_app = typer.Typer(help="Manage users (admin).", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage personal access tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit log (admin).", no_args_is_help=True)

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
SCOPE_HELP = "Scope to grant (repeat): repo:read, repo:write, workspace:write, pipelines:run, agent, tokens, admin."


@users_app.command("create")
def users_create(
    username: str,
    admin: Annotated[bool, typer.Option(help="Make the user an administrator.")] = False,
    json: JSON = False,
) -> None:
    """Create a user. Give them a token with `mlyard tokens create --user NAME`."""
    with client() as api:
        user = api.users.create(username, admin=admin)
    if json:
        output.print_json(user.to_dict())
    else:
        output.console().print(f"created user {user.username}" + (" (admin)" if user.is_admin else ""))


@users_app.command("list")
def users_list(json: JSON = False) -> None:
    """List users."""
    with client() as api:
        users = [user.to_dict() for user in api.users.list()]
    if json:
        output.print_json(users)
    else:
        output.table(users, [("username", "USER"), ("is_admin", "ADMIN"), ("created_at", "CREATED")])


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise the token by.")],
    scope: Annotated[list[str], typer.Option("--scope", help=SCOPE_HELP)],
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d or 12h (default: no expiry).")] = None,
    user: Annotated[str | None, typer.Option(help="Create it for another user (admin).")] = None,
    json: JSON = False,
) -> None:
    """Create a personal access token. It is shown once: store it now."""
    scopes = [s for item in scope for s in item.replace(",", " ").split()]
    with client() as api:
        token = api.tokens.create(name, scopes, expires_in=expires_in, user=user)
    if json:
        output.print_json(token.to_dict())
        return
    con = output.console()
    con.print(f"created token [bold]{token.name}[/] for {token.user} (scopes: {', '.join(token.scopes)})")
    con.print(token.token, soft_wrap=True, markup=False)
    con.print("[dim]this is the only time the token is shown[/]")


@tokens_app.command("list")
def tokens_list(
    all_users: Annotated[bool, typer.Option("--all", help="Every user's tokens (admin).")] = False, json: JSON = False
) -> None:
    """List your tokens (never their secrets)."""
    with client() as api:
        tokens = [token.to_dict() for token in api.tokens.list(all_users=all_users)]
    if json:
        output.print_json(tokens)
    else:
        output.table(
            tokens,
            [
                ("id", "ID"),
                ("name", "NAME"),
                ("user", "USER"),
                ("prefix", "PREFIX"),
                ("scopes", "SCOPES"),
                ("state", "STATE"),
                ("expires_at", "EXPIRES"),
                ("last_used_at", "LAST USED"),
            ],
            empty="no tokens",
        )


@tokens_app.command("revoke")
def tokens_revoke(token: Annotated[str, typer.Argument(help="Token id or name.")], json: JSON = False) -> None:
    """Revoke a token: it fails on the very next request."""
    with client() as api:
        row = api.tokens.revoke(token)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"revoked token {row.name} (id {row.id})")


@audit_app.command("list")
def audit_list(
    limit: int = 50, action: Annotated[str | None, typer.Option(help="e.g. login.failed")] = None, json: JSON = False
) -> None:
    """The newest audit entries."""
    with client() as api:
        rows = [entry.to_dict() for entry in api.audit(limit=limit, action=action)]
    if json:
        output.print_json(rows)
    else:
        output.table(
            rows,
            [
                ("at", "AT"),
                ("action", "ACTION"),
                ("actor", "ACTOR"),
                ("target", "TARGET"),
                ("remote_addr", "FROM"),
                ("detail", "DETAIL"),
            ],
            empty="no audit entries",
        )


def whoami(json: JSON = False) -> None:
    """Show who the configured token belongs to, and its scopes."""
    with client() as api:
        me = api.me()
    if json:
        output.print_json(me.to_dict())
    else:
        output.console().print(f"{me.username} ({', '.join(me.scopes)}) at {api.url}")


def status(json: JSON = False) -> None:
    """Show the server's version and uptime, its local agents and jobs, and its warm pools with their limits."""
    with client() as api:
        found = api.status()
    if json:
        output.print_json(found.to_dict())
        return
    minutes = int(found.uptime_seconds // 60)
    uptime = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    con = output.console()
    con.print(f"mlyard {found.version} at {found.url}, up {uptime} (since {found.started_at})", markup=False)
    con.print(f"local agents: {found.local_agents} of {found.local_agents_configured} running; pipeline jobs: "
              f"{found.jobs_queued} queued, {found.jobs_running} running", markup=False)  # fmt: skip
    rows = [{**pool.to_dict(), "limit": "-" if pool.limit is None else pool.limit} for pool in found.pools]
    output.table(rows, [("name", "WARM POOL"), ("ready", "READY"), ("starting", "STARTING"), ("limit", "LIMIT"),
                        ("setting", "SETTING"), ("detail", "DETAIL")])  # fmt: skip
