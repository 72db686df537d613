"""`mlyard models ...`: the registry of an environment (MLflow) with stages Staging and Production."""

from __future__ import annotations

from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client

models_app = typer.Typer(
    help="Registered models of an environment: list, show, stage, history, rollback.", no_args_is_help=True
)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ENV = Annotated[str, typer.Option("--env", help="Environment whose registry to use.")]


@models_app.command("list")
def models_list(env: ENV = "dev", json: JSON = False) -> None:
    """Registered models with their Staging and Production versions."""
    with client() as api:
        rows = api.get("/api/v1/models", env=env)
    if json:
        output.print_json(rows)
    else:
        output.table(
            rows,
            [
                ("name", "MODEL"),
                ("latest_version", "LATEST"),
                ("staging", "STAGING"),
                ("production", "PRODUCTION"),
                ("version_count", "VERSIONS"),
                ("updated", "UPDATED"),
            ],
            empty=f"no registered models in {env}",
        )


@models_app.command("show")
def models_show(name: str, env: ENV = "dev", json: JSON = False) -> None:
    """A model's versions: stage, aliases, tags, metrics, source run."""
    with client() as api:
        doc = api.get(f"/api/v1/models/{name}", env=env)
    if json:
        output.print_json(doc)
        return
    output.fields([("model", doc["name"]), ("environment", env), ("aliases", doc.get("aliases") or None)])
    rows = []
    for v in doc["versions"]:
        metrics = ", ".join(
            f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}"
            for k, val in sorted((v.get("metrics") or {}).items())
        )
        rows.append(
            {
                **v,
                "metrics": metrics,
                "aliases": ", ".join(v.get("aliases") or []),
                "tags": ", ".join(f"{k}={t}" for k, t in sorted((v.get("tags") or {}).items())),
            }
        )
    output.table(
        rows,
        [
            ("version", "VERSION"),
            ("stage", "STAGE"),
            ("aliases", "ALIASES"),
            ("metrics", "METRICS"),
            ("run_id", "RUN"),
            ("tags", "TAGS"),
            ("created", "CREATED"),
        ],
        empty="no versions",
    )


@models_app.command("stage")
def models_stage(
    name: str, version: str,
    stage: Annotated[str, typer.Argument(help="Staging, Production, Archived or None.")],
    env: ENV = "dev",
    reason: Annotated[str, typer.Option(help="Why (recorded in the history).")] = "",
    json: JSON = False,
) -> None:  # fmt: skip
    """Move a model version to a stage (Production moves the previous one to Archived)."""
    with client() as api:
        entry = api.post(
            f"/api/v1/models/{name}/versions/{version}/stage?env={env}", {"stage": stage, "reason": reason}
        )
    if json:
        output.print_json(entry)
    else:
        output.console().print(
            f"{name} version {entry.get('version', version)}: {entry.get('from') or 'None'} -> "
            f"{entry.get('to', stage)} in {env}"
        )


@models_app.command("history")
def models_history(name: str, env: ENV = "dev", json: JSON = False) -> None:
    """Stage changes of a model, oldest first."""
    with client() as api:
        rows = api.get(f"/api/v1/models/{name}/history", env=env)
    if json:
        output.print_json(rows)
    else:
        output.table(
            rows,
            [
                ("at", "AT"),
                ("version", "VERSION"),
                ("from", "FROM"),
                ("to", "TO"),
                ("by", "BY"),
                ("action", "ACTION"),
                ("reason", "REASON"),
            ],
            empty="no stage changes yet",
        )


@models_app.command("rollback")
def models_rollback(name: str, env: ENV = "dev", reason: str = "", json: JSON = False) -> None:
    """Production goes back to the previous Production version."""
    with client() as api:
        entry = api.post(f"/api/v1/models/{name}/rollback?env={env}", {"reason": reason})
    if json:
        output.print_json(entry)
    else:
        output.console().print(f"{name}: Production is version {entry.get('version')} again in {env}")
