"""`mlyard connections ...`, `mlyard variable-groups ...` and `mlyard environments set`: protected resources."""

from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.cli.repos import environments_app
from mlyard.cli.runs import pairs
from mlyard.errors import InvalidInput

connections_app = typer.Typer(help="Service connections (protected resources).", no_args_is_help=True)
groups_app = typer.Typer(help="Variable groups (protected resources).", no_args_is_help=True)

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@connections_app.command("create")
def connections_create(
    name: str,
    type: Annotated[str, typer.Option("--type", help="Connection type (generic).")] = "generic",
    env: Annotated[list[str] | None, typer.Option("--env", help="Setting K=V (repeat).")] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", help="Secret setting K=V (repeat).")] = None,
    update: Annotated[bool, typer.Option(help="Replace an existing connection.")] = False,
    json: JSON = False,
) -> None:
    """Create a service connection; its settings reach AzureCLI@2 steps that name it."""
    body = {
        "name": name,
        "type": type,
        "settings": pairs(env, "--env"),
        "secrets": pairs(secret, "--secret"),
        "update": update,
    }
    with client() as api:
        row = api.connections.create(body)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(
            f"saved service connection {row.name} ({len(row.settings)} settings, {len(row.secret_keys)} secret)"
        )


@connections_app.command("list")
def connections_list(json: JSON = False) -> None:
    """List service connections (secret values are never shown)."""
    with client() as api:
        rows = api.connections.list()
    if json:
        output.print_json([r.to_dict() for r in rows])
    else:
        output.table(
            [{**r.to_dict(), "keys": sorted(r.settings)} for r in rows],
            [("name", "NAME"), ("type", "TYPE"), ("keys", "SETTINGS"), ("secret_keys", "SECRETS")],
            empty="no service connections",
        )


@connections_app.command("show")
def connections_show(name: str, json: JSON = False) -> None:
    """Show a service connection."""
    with client() as api:
        row = api.connections.get(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.fields(
            [
                ("name", row.name),
                ("type", row.type),
                *[(k, v) for k, v in row.settings.items()],
                *[(k, "***") for k in row.secret_keys],
            ]
        )


@connections_app.command("delete")
def connections_delete(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.connections.delete(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"deleted service connection {row.name}")


@groups_app.command("create")
def groups_create(
    name: str,
    var: Annotated[list[str] | None, typer.Option("--var", help="Variable K=V (repeat).")] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", help="Secret variable K=V (repeat).")] = None,
    update: Annotated[bool, typer.Option(help="Replace an existing group.")] = False,
    json: JSON = False,
) -> None:
    """Create a variable group (use it in YAML with `variables: - group: NAME`)."""
    body = {"name": name, "variables": pairs(var, "--var"), "secrets": pairs(secret, "--secret"), "update": update}
    with client() as api:
        row = api.variable_groups.create(body)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"saved variable group {row.name}")


@groups_app.command("list")
def groups_list(json: JSON = False) -> None:
    with client() as api:
        rows = api.variable_groups.list()
    if json:
        output.print_json([r.to_dict() for r in rows])
    else:
        output.table(
            [{**r.to_dict(), "names": sorted(r.variables)} for r in rows],
            [("name", "NAME"), ("names", "VARIABLES"), ("secret_variables", "SECRETS")],
            empty="no variable groups",
        )


@groups_app.command("show")
def groups_show(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.variable_groups.get(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.fields(
            [("name", row.name), *row.variables.items(), *[(k, "***") for k in row.secret_variables]]
        )


@groups_app.command("delete")
def groups_delete(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.variable_groups.delete(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"deleted variable group {row.name}")


@environments_app.command("set")
def environments_set(
    name: str,
    approval: Annotated[str | None, typer.Option(help="required or none: approve each deployment by hand.")] = None,
    notify_webhook: Annotated[
        str | None,
        typer.Option(
            "--notify-webhook",
            help="Slack-compatible webhook URL that model CI notifies on promotion or failure ('' removes it).",
        ),
    ] = None,
    json: JSON = False,
) -> None:
    """Change an environment's checks and notifications (admin)."""
    if approval not in (None, "required", "none"):
        raise InvalidInput(f"--approval must be 'required' or 'none', not {approval!r}")
    required = None if approval is None else approval == "required"
    with client() as api:
        row = api.environments.update(name, approval_required=required, notify_webhook=notify_webhook)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(
            f"environment {row.name}: approval " + ("required" if row.approval_required else "not required")
            + ", notification webhook " + ("set" if row.notify_webhook else "none"),
            markup=False,
        )


@environments_app.command("rotate-token")
def environments_rotate_token(name: str, json: JSON = False) -> None:
    """Give the environment's variable group a new token; the previous one stops working at once (admin)."""
    with client() as api:
        row = api.environments.rotate_token(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"variable group {row.name}: new token in " + ", ".join(
            k for k in row.secret_variables if k.endswith("_TOKEN")), markup=False)
