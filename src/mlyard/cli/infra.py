"""`mlyard create` (the ML project creator) and `mlyard infra sync / create-project`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.errors import InvalidInput, OperationFailed
from mlyard.protocol import SUCCESSFUL_STATES

if TYPE_CHECKING:
    from mlyard.client import Client

infra_app = typer.Typer(help="The platform's infrastructure: environments, template, project creator.",
                        no_args_is_help=True)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
CREATOR = "ml-project-creator-pipeline"


@infra_app.command("sync")
def infra_sync(json: JSON = False) -> None:
    """Create what is missing of the infrastructure (connections, repos, creator pipeline); changes nothing else."""
    from mlyard.services.infrastructure import admin_principal, sync
    from mlyard.services.platform import open_platform
    from mlyard.settings import Settings, resolve_home

    home = resolve_home()
    if not (home / "settings.json").exists():
        raise InvalidInput(f"{home} is not an mlyard home: run `mlyard init` first")
    platform = open_platform(Settings.load(home))
    try:
        created = sync(platform, admin_principal(platform))
    finally:
        platform.close()
    if json:
        output.print_json(created)
        return
    made = [f"{kind[:-1]} {name}" for kind, names in created.items() for name in names]
    output.console().print("created " + ", ".join(made) if made else "the infrastructure is complete: nothing to do")


@infra_app.command("create-project")
def infra_create_project(
    repo_name: Annotated[str, typer.Option(help="Repository and model name.")],
    env_name: Annotated[str, typer.Option(help="Environment to deploy to.")],
    demo: Annotated[str, typer.Option(help="true/false: render the demo project.")] = "false",
    problem_type: Annotated[str, typer.Option(help="binary, multiclass or regression.")] = "binary",
    json: JSON = False,
) -> None:
    """What the creator pipeline runs (as a remote user, with MLYARD_URL / MLYARD_TOKEN / GIT_USERNAME)."""
    from mlyard.creator import create_project

    flag = demo.strip().lower()
    if flag not in ("true", "false", "yes", "no", "1", "0"):
        raise InvalidInput(f"--demo must be true or false, not {demo!r}")
    with client() as api:
        username = os.environ.get("GIT_USERNAME") or api.me().username
        result = create_project(api, username=username, repo_name=repo_name, env_name=env_name,
                                demo=flag in ("true", "yes", "1"), problem_type=problem_type.strip(),
                                say=lambda line: print(line, flush=True),
                                requested_for=os.environ.get("BUILD_REQUESTEDFOR", ""))  # the run's requester
    if json:
        output.print_json(result)
        return
    _summary(result)


def _summary(result: dict[str, Any]) -> None:
    con = output.console()
    repo = result["repo"]
    con.print(f"repository  {repo['name']}  ({repo['clone_url']})")
    con.print(f"pipelines   {', '.join(result['pipelines'])} (folder {result['folder']})")
    for run in result.get("runs") or []:
        con.print(f"run {run['id']:<7} {run['pipeline']}: {run['state']}", markup=False, highlight=False)
    waiting = result.get("waiting_runs") or []
    if waiting:
        con.print(f"{len(waiting)} run(s) wait for you: the first run of a pipeline asks to use the environment's "
                  "resources once")  # fmt: skip
    for entry in waiting:
        con.print(f"  {entry['command']:<24} # {entry['pipeline']} waits for {', '.join(entry['waiting_for'])}",
                  markup=False, highlight=False)  # fmt: skip


def create(
    repo: Annotated[str, typer.Argument(help="Name of the new repository (and model).")],
    env: Annotated[str, typer.Option("--env", help="Environment: dev, test, prod...")] = "dev",
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Start from the demo project.")] = False,
    problem_type: Annotated[
        str, typer.Option(help="What the model predicts: binary, multiclass or regression.")
    ] = "binary",
    follow: Annotated[bool, typer.Option(help="Follow the creator's log until it ends.")] = False,
    json: JSON = False,
) -> None:
    """Create an ML project: runs ml-project-creator-pipeline (repo, pipelines, first deployment)."""
    from mlyard.cli.runs import follow_logs
    from mlyard.creator import preflight

    with client() as api:
        preflight(api, repo, env, problem_type)
        parameters = {"repo_name": repo, "env_name": env, "demo": str(demo).lower()}
        if problem_type != "binary":  # a creator pipeline made before problem types has no such parameter
            parameters["problem_type"] = problem_type
        run = api.pipelines.run(CREATOR, parameters)
        if not follow:
            if json:
                output.print_json({"creator_run": run.to_dict()})
            else:
                output.console().print(f"queued {CREATOR} run {run.id}; follow it with "
                                       f"`mlyard runs logs {run.id} --follow`")
            return
        state = follow_logs(api, run.id, quiet=json)
        if state not in SUCCESSFUL_STATES:
            raise OperationFailed(f"the project creator failed (run {run.id}, {state}): "
                                  f"{_failure(api, run.id)}; see `mlyard runs logs {run.id}`")
        result = _created(api, repo, env, demo, problem_type)
    if json:
        output.print_json({"creator_run": run.to_dict(), **result})
        return
    output.console().print(f"[green]created {repo}[/]")
    _summary(result)


def _failure(api: Client, run_id: int) -> str:
    """The creator's own error line from the log, else the first job message."""
    lines = [line.split(" ", 1)[-1] for line in api.runs.logs(run_id).splitlines()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    run = api.runs.get(run_id)
    for job in run.jobs:
        if job.message:
            return str(job.message)
    return str(run.message or "unknown reason")


def _created(api: Client, repo: str, env: str, demo: bool, problem_type: str) -> dict[str, Any]:
    from mlyard.creator import PIPELINES, started_runs

    info = api.repos.get(repo)
    names = [p.name for p in api.pipelines.list(folder=repo)]
    made = [n for n in (f"{repo}-{k}" for k in PIPELINES) if n in names]
    return {"repo": info.to_dict(), "pipelines": made, "folder": repo, "environment": env, "demo": demo,
            "problem_type": problem_type, **started_runs(api, repo, made)}
