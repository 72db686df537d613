"""`mlyard repos` and `mlyard environments`."""

from pathlib import Path
from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client

repos_app = typer.Typer(help="Hosted git repositories.", no_args_is_help=True)
environments_app = typer.Typer(help="Environments (dev, test, prod, ...).", no_args_is_help=True)

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@repos_app.command("create")
def repos_create(
    name: str,
    from_dir: Annotated[Path | None, typer.Option("--from-dir", help="Push this directory's content.")] = None,
    default_branch: Annotated[str | None, typer.Option(help="Default branch (default: the platform's).")] = None,
    allow_force_push: Annotated[bool, typer.Option(help="Accept non-fast-forward pushes.")] = False,
    json: JSON = False,
) -> None:
    """Create a repository, optionally with the content of a directory."""
    from mlyard.errors import MlyardError
    from mlyard.git.remote import push_directory
    from mlyard.settings import CliConfig, resolve_home

    with client() as api:
        repo = api.repos.create(name, default_branch=default_branch, allow_force_push=allow_force_push)
        pushed = ""
        if from_dir is not None:
            config = CliConfig.load(resolve_home())
            try:
                pushed = push_directory(
                    repo.clone_url,
                    username=config.username,
                    token=api.token,
                    source=from_dir.resolve(),
                    branch=repo.default_branch,
                )
            except MlyardError as exc:
                _undo_create(api, name, exc)
    if json:
        output.print_json({**repo.to_dict(), "pushed": pushed})
        return
    con = output.console()
    con.print(f"created repository [bold]{repo.name}[/] (default branch {repo.default_branch})")
    if pushed:
        con.print(pushed)
    con.print(f"clone it with: git clone {repo.clone_url}")


def _undo_create(api: object, name: str, cause: Exception) -> None:
    from mlyard.client import Client
    from mlyard.errors import MlyardError, OperationFailed

    assert isinstance(api, Client)
    try:
        api.repos.delete(name)
        undone = "the repository was removed again"
    except MlyardError as exc:
        undone = f"the empty repository remains ({exc.message}); remove it with `mlyard repos delete {name}`"
    raise OperationFailed(f"could not push the directory: {cause}; {undone}") from cause


@repos_app.command("list")
def repos_list(json: JSON = False) -> None:
    """List repositories."""
    with client() as api:
        repos = [repo.to_dict() for repo in api.repos.list()]
    if json:
        output.print_json(repos)
    else:
        output.table(
            repos,
            [
                ("name", "NAME"),
                ("default_branch", "DEFAULT BRANCH"),
                ("created_by", "CREATED BY"),
                ("clone_url", "CLONE URL"),
            ],
            empty="no repositories yet: `mlyard repos create NAME`",
        )


@repos_app.command("show")
def repos_show(name: str, json: JSON = False) -> None:
    """Show a repository: default branch, branches, last commit."""
    with client() as api:
        repo = api.repos.get(name)
    if json:
        output.print_json(repo.to_dict())
        return
    last = repo.last_commit
    output.fields(
        [
            ("name", repo.name),
            ("clone url", repo.clone_url),
            ("default branch", repo.default_branch),
            ("force push", "allowed" if repo.allow_force_push else "rejected"),
            (
                "last commit",
                f"{last['sha'][:10]} {last['subject']} ({last['author']}, {last['date']})" if last else None,
            ),
            ("tags", repo.tags or None),
        ]
    )
    output.table(
        repo.branches or [],
        [("name", "BRANCH"), ("sha", "HEAD"), ("date", "DATE"), ("subject", "SUBJECT")],
        empty="no branches yet (empty repository)",
    )


@repos_app.command("update")
def repos_update(
    name: str,
    allow_force_push: Annotated[bool | None, typer.Option("--allow-force-push/--deny-force-push")] = None,
    default_branch: Annotated[str | None, typer.Option()] = None,
    json: JSON = False,
) -> None:
    """Change a repository's settings (admin)."""
    with client() as api:
        repo = api.repos.update(name, allow_force_push=allow_force_push, default_branch=default_branch)
    if json:
        output.print_json(repo.to_dict())
    else:
        output.console().print(
            f"updated {repo.name}: default branch {repo.default_branch}, force push "
            + ("allowed" if repo.allow_force_push else "rejected")
        )


@repos_app.command("delete")
def repos_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False, json: JSON = False
) -> None:
    """Delete a repository and its history (admin)."""
    if not yes and not typer.confirm(f"delete repository {name} and all its history?", default=False):
        raise typer.Exit(1)
    with client() as api:
        repo = api.repos.delete(name)
    if json:
        output.print_json(repo.to_dict())
    else:
        output.console().print(f"deleted repository {repo.name}")


@repos_app.command("events")
def repos_events(name: str, after: int = 0, limit: int = 100, json: JSON = False) -> None:
    """Push events of a repository, oldest first."""
    with client() as api:
        events = api.repos.events(name, after=after, limit=limit)
    if json:
        output.print_json([event.to_dict() for event in events])
        return
    rows = [{**e.to_dict(), "new": e.new_sha[:10], "paths": len(e.changed_paths)} for e in events]
    output.table(
        rows,
        [
            ("id", "ID"),
            ("kind", "KIND"),
            ("ref", "REF"),
            ("new", "NEW"),
            ("pusher", "PUSHER"),
            ("paths", "PATHS"),
            ("created_at", "AT"),
        ],
        empty="no push events",
    )


@environments_app.command("list")
def environments_list(json: JSON = False) -> None:
    """List environments."""
    with client() as api:
        envs = [env.to_dict() for env in api.environments.list()]
    if json:
        output.print_json(envs)
    else:
        output.table(
            envs, [("name", "NAME"), ("workspace_uri", "WORKSPACE"), ("mlflow_tracking_uri", "MLFLOW TRACKING URI")]
        )


@environments_app.command("show")
def environments_show(name: str, json: JSON = False) -> None:
    """Show an environment's workspace, registry and serving settings."""
    with client() as api:
        env = api.environments.get(name).to_dict()
    if json:
        output.print_json(env)
    else:
        output.fields([(k.replace("_", " "), v) for k, v in env.items()])


@environments_app.command("create")
def environments_create(
    name: str,
    mlflow_tracking_uri: Annotated[str, typer.Option(help="A remote MLflow instead of the embedded one.")] = "",
    json: JSON = False,
) -> None:
    """Declare a new environment (admin)."""
    with client() as api:
        env = api.environments.create(name, mlflow_tracking_uri=mlflow_tracking_uri)
    if json:
        output.print_json(env.to_dict())
    else:
        output.console().print(f"created environment {env.name} (workspace {env.workspace_uri})")
