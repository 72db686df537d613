"""`mlyard jobs run/list/show/logs/cancel`: run deployed workspace code with the environment's MLflow settings."""

import sys
from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.errors import OperationFailed
from mlyard.protocol import State

jobs_app = typer.Typer(
    help="Jobs on code deployed in an environment's workspace (like Databricks jobs).", no_args_is_help=True
)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@jobs_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def jobs_run(
    ctx: typer.Context,
    entrypoint: Annotated[str, typer.Argument(help="Notebook name (train) or a .py path in the deployed code.")],
    env: Annotated[str, typer.Option("--env", help="Environment.")] = "dev",
    app: Annotated[str, typer.Option("--app", help="The deployed app (repository name).")] = "",
    branch: Annotated[str, typer.Option("--branch", help="Deployed branch.")] = "master",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the log until the job ends.")] = True,
    json: JSON = False,
) -> None:
    """Run ENTRYPOINT [ARGS]... of ml_apps/<app>/<branch> in the environment's workspace."""
    from mlyard.errors import InvalidInput

    if not app:
        raise InvalidInput("--app is required: the deployed app (the repository's name)")
    with client() as api:
        job = api.jobs.start(env=env, app=app, branch=branch, entrypoint=entrypoint, args=list(ctx.args))
        if not wait:
            if json:
                output.print_json(job.to_dict())
            else:
                output.console().print(f"started job {job.id}; follow it with `mlyard jobs logs {job.id} --follow`")
            return
        for line in api.jobs.follow_logs(job.id):
            if not json and not line.startswith(f"## job {job.id} "):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        job = api.jobs.get(job.id)
    if json:
        output.print_json(job.to_dict())
    elif job.state == State.SUCCEEDED:
        runs = ", ".join(job.mlflow_run_ids) or "none"
        took = output.duration(job.duration_seconds or 0)
        output.console().print(f"job {job.id} succeeded in {took} (MLflow runs: {runs})", markup=False)
    if job.state != State.SUCCEEDED:
        raise OperationFailed(f"job {job.id} {job.state}: {job.message or 'see its log'}")


@jobs_app.command("list")
def jobs_list(
    env: Annotated[str | None, typer.Option("--env")] = None,
    app: Annotated[str | None, typer.Option("--app")] = None,
    limit: int = 50,
    json: JSON = False,
) -> None:
    """Recent jobs, newest first."""
    with client() as api:
        rows = [job.to_dict() for job in api.jobs.list(env=env, app=app, limit=limit)]
    if json:
        output.print_json(rows)
    else:
        for row in rows:
            row["duration"] = output.duration(row.get("duration_seconds")) or None
        output.table(
            rows,
            [
                ("id", "JOB"),
                ("environment", "ENV"),
                ("app", "APP"),
                ("branch", "BRANCH"),
                ("entrypoint", "ENTRY POINT"),
                ("state", "STATE"),
                ("duration", "DURATION"),
                ("mlflow_run_ids", "MLFLOW RUNS"),
            ],
            empty="no jobs yet",
        )


@jobs_app.command("show")
def jobs_show(job_id: int, json: JSON = False) -> None:
    """A job: state, exit code, duration, MLflow runs."""
    with client() as api:
        job = api.jobs.get(job_id).to_dict()
    if json:
        output.print_json(job)
    else:
        shown = {**job, "duration_seconds": output.duration(job.get("duration_seconds")) or None}
        output.fields([(k.removesuffix("_seconds").replace("_", " "), v) for k, v in shown.items()])


@jobs_app.command("logs")
def jobs_logs(job_id: int, follow: Annotated[bool, typer.Option(help="Stream until the job ends.")] = False) -> None:
    """Print a job's log."""
    with client() as api:
        if follow:
            for line in api.jobs.follow_logs(job_id):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            return
        sys.stdout.write(api.jobs.logs(job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: int, json: JSON = False) -> None:
    """Cancel a job: a queued one at once, a running one is stopped (SIGTERM, SIGKILL 5 s later)."""
    with client() as api:
        job = api.jobs.cancel(job_id)
    if json:
        output.print_json(job.to_dict())
    else:
        print(f"job {job_id}: cancel requested ({job.state})")
