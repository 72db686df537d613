"""`mlyard deployments ...`: model CD to a serving target (the `local` scoring servers of the platform)."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mlyard.cli import output

if TYPE_CHECKING:
    from mlyard.client import Client

deployments_app = typer.Typer(
    help="Deployed models: create (deploy or redeploy), list, show, logs, delete.", no_args_is_help=True
)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ENV = Annotated[str, typer.Option("--env", help="Environment.")]
DEPLOY_TIMEOUT = 600.0  # starting a scoring server loads the model: allow for a slow machine


def _client(timeout: float = 60.0) -> "Client":
    from mlyard.cli.context import client

    return client(timeout)


@deployments_app.command("create")
def deployments_create(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    env: ENV = "dev",
    version: Annotated[str | None, typer.Option(help="Model version to deploy (else the one in --stage).")] = None,
    stage: Annotated[str, typer.Option(help="Staging or Production, when no --version is given.")] = "Production",
    target: Annotated[str, typer.Option(help="Serving target (local).")] = "local",
    cpu: Annotated[float, typer.Option(help="CPU cores.")] = 1,
    memory: Annotated[float, typer.Option(help="Memory in GB.")] = 2,
    json: JSON = False,
) -> None:
    """Deploy (or redeploy, without downtime) a model version; prints the scoring URI."""
    body = {"env": env, "model": model, "version": version or None, "stage": None if version else stage,
            "target": target, "cpu": cpu, "memory": memory}  # fmt: skip
    with _client(DEPLOY_TIMEOUT) as api:
        found = api.deployments.create(body)
    if json:
        output.print_json(found.to_dict())
    else:
        print(found.scoring_uri)


@deployments_app.command("list")
def deployments_list(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None, json: JSON = False
) -> None:
    """Deployments with their version, state and scoring URI."""
    with _client() as api:
        rows = [row.to_dict() for row in api.deployments.list(env=env)]
    if json:
        output.print_json(rows)
        return
    columns = [
        ("environment", "ENV"),
        ("model", "MODEL"),
        ("version", "VERSION"),
        ("target", "TARGET"),
        ("state", "STATE"),
        ("scoring_uri", "SCORING URI"),
        ("updated_at", "UPDATED"),
    ]
    output.table(rows, columns, empty="no deployments")


@deployments_app.command("show")
def deployments_show(model: str, env: ENV = "dev", json: JSON = False) -> None:
    """One deployment."""
    with _client() as api:
        found = api.deployments.get(env, model).to_dict()
    if json:
        output.print_json(found)
        return
    keys = ("model", "environment", "version", "model_uri", "target", "cpu", "memory", "state", "message",
            "scoring_uri", "pid", "log_path", "requested_by", "created_at", "updated_at")  # fmt: skip
    output.fields([(key, found.get(key)) for key in keys])


@deployments_app.command("logs")
def deployments_logs(model: str, env: ENV = "dev") -> None:
    """The scoring server's log."""
    with _client() as api:
        sys.stdout.write(api.deployments.logs(env, model))


@deployments_app.command("delete")
def deployments_delete(model: str, env: ENV = "dev", json: JSON = False) -> None:
    """Stop the scoring server and remove the deployment."""
    with _client() as api:
        found = api.deployments.delete(env, model)
    if json:
        output.print_json(found.to_dict())
    else:
        output.console().print(f"deleted deployment {model} in {env} ({found.scoring_uri} no longer answers)")
