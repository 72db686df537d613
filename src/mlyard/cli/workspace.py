"""`mlyard workspace`: deploy code into an environment's workspace, list and show what is there.

The target is always a workspace URI: `--workspace-uri`, else (deploy only) `WORKSPACE_URI` as the
environment's service connection sets it for the pipeline step, else the server's environment.
"""


import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlyard.cli import output

if TYPE_CHECKING:
    from mlyard.workspace import Workspace

workspace_app = typer.Typer(
    help="Environment workspaces: code deployed under ml_apps/<app>/<branch>.", no_args_is_help=True
)

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
URI = Annotated[str | None, typer.Option("--workspace-uri", help="Target workspace URI (default: the environment's).")]


@workspace_app.command("deploy")
def deploy(
    env: Annotated[str, typer.Option("--env", help="Environment (recorded in the manifest).")],
    app: Annotated[str, typer.Option("--app", help="App name: the repository's name.")],
    branch: Annotated[str, typer.Option("--branch", help="Full branch name; refs/heads/ is stripped.")],
    source: Annotated[Path, typer.Option("--source", help="Folder to deploy.")],
    commit: Annotated[str | None, typer.Option(help="Commit (default: $BUILD_SOURCEVERSION).")] = None,
    run: Annotated[str | None, typer.Option(help="Run id (default: $BUILD_BUILDID).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who deploys (default: $BUILD_REQUESTEDFOR).")] = None,
    workspace_uri: URI = None,
    json: JSON = False,
) -> None:
    """Copy a folder to ml_apps/<app>/<branch> of an environment's workspace, atomically."""
    from mlyard.names import check_env_name
    from mlyard.workspace import check_app, check_branch, strip_branch_ref

    check_env_name(env)
    check_app(app)
    branch = check_branch(strip_branch_ref(branch))
    uri = workspace_uri or os.environ.get("WORKSPACE_URI") or _server_uri(env)
    manifest = {
        "commit": commit or os.environ.get("BUILD_SOURCEVERSION") or None,
        "run": {"id": run or os.environ.get("BUILD_BUILDID") or None, "url": os.environ.get("MLYARD_RUNURL") or None},
        "deployed_by": by or os.environ.get("BUILD_REQUESTEDFOR") or _os_user(),
        "environment": env,
        "workspace_uri": uri,
    }
    result = _open(uri).deploy(app, branch, source, manifest=manifest)
    if json:
        output.print_json(result)
        return
    from rich.markup import escape

    con = output.console()
    for warning in result["warnings"]:
        con.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    commit_text = f"commit {result['commit'][:10]}" if result["commit"] else "no commit recorded"
    con.print(
        f"deployed {app} {branch} ({commit_text}, {result['files']} files, {result['bytes']} bytes) "
        f"to {env}: {result['uri']}",
        markup=False,
        soft_wrap=True,
    )


@workspace_app.command("ls")
def ls(
    path: Annotated[str, typer.Argument(help="Path below the workspace root (needs --env).")] = "",
    env: Annotated[str | None, typer.Option("--env", help="List inside this environment's workspace.")] = None,
    workspace_uri: URI = None,
    json: JSON = False,
) -> None:
    """Without --env: every environment's deployed apps and branches. With --env: PATH in its workspace."""
    from mlyard.errors import InvalidInput

    if env is None and workspace_uri is None:
        if path:
            raise InvalidInput(f"listing {path!r} needs --env ENV (the environment whose workspace to list)")
        _ls_all(json)
        return
    entries = _open(workspace_uri or _server_uri(env or "")).ls(path)
    if json:
        output.print_json(entries)
        return
    output.table(
        entries,
        [("name", "NAME"), ("type", "TYPE"), ("size", "SIZE"), ("modified", "MODIFIED")],
        empty=f"{path or 'the workspace'} is empty",
    )


@workspace_app.command("show")
def show(
    env: Annotated[str, typer.Option("--env", help="Environment.")],
    app: Annotated[str, typer.Option("--app", help="App name: the repository's name.")],
    branch: Annotated[str, typer.Option("--branch", help="Full branch name; refs/heads/ is stripped.")],
    workspace_uri: URI = None,
    json: JSON = False,
) -> None:
    """The manifest of a deployed branch (commit, run, time, who) and its files."""
    from mlyard.workspace import strip_branch_ref

    detail = _open(workspace_uri or _server_uri(env)).show(app, strip_branch_ref(branch))
    if json:
        output.print_json(detail)
        return
    run = detail.get("run") or {}
    output.fields(
        [
            ("app", detail.get("app")),
            ("branch", detail.get("branch")),
            ("environment", detail.get("environment")),
            ("path", detail.get("uri")),
            ("commit", detail.get("commit")),
            ("run", " ".join(str(v) for v in (run.get("id"), run.get("url")) if v) or None),
            ("deployed at", detail.get("deployed_at")),
            ("deployed by", detail.get("deployed_by")),
            ("files", f"{len(detail['files'])} ({detail.get('bytes')} bytes)"),
        ]
    )
    output.table(detail["files"], [("path", "FILE"), ("size", "SIZE")], empty="no files")


@workspace_app.command("remove")
def remove(
    env: Annotated[str, typer.Option("--env", help="Environment.")],
    app: Annotated[str, typer.Option("--app", help="App name: the repository's name.")],
    branch: Annotated[str, typer.Option("--branch", help="Full branch name; refs/heads/ is stripped.")],
    workspace_uri: URI = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json: JSON = False,
) -> None:
    """Remove a deployed branch from the workspace (one atomic switch; its versions are deleted)."""
    from mlyard.workspace import strip_branch_ref

    name = strip_branch_ref(branch)
    if not yes and not typer.confirm(f"remove ml_apps/{app}/{name} from the {env} workspace?", default=False):
        raise typer.Exit(1)
    removed = _open(workspace_uri or _server_uri(env)).remove(app, name)
    if json:
        output.print_json(removed if isinstance(removed, dict) else {"app": app, "branch": name, "removed": True})
    else:
        output.console().print(f"removed ml_apps/{app}/{name} from the {env} workspace")


def _ls_all(json: bool) -> None:
    from mlyard.cli.context import client
    from mlyard.errors import MlyardError

    with client() as api:
        envs = api.environments.list()
    rows: list[dict[str, Any]] = []
    for env in envs:
        try:
            deployed = _open(env.workspace_uri).deployments()
        except MlyardError as exc:
            from rich.markup import escape

            output.err_console().print(f"[yellow]warning:[/] environment {env.name}: {escape(exc.message)}")
            continue
        rows.extend({"environment": env.name, **row} for row in deployed)
    if json:
        output.print_json(rows)
        return
    for row in rows:
        row["commit"] = (row.get("commit") or "")[:10] or None
        row["run_id"] = (row.get("run") or {}).get("id")
    output.table(
        rows,
        [
            ("environment", "ENV"),
            ("app", "APP"),
            ("branch", "BRANCH"),
            ("commit", "COMMIT"),
            ("run_id", "RUN"),
            ("deployed_at", "DEPLOYED AT"),
            ("deployed_by", "BY"),
        ],
        empty="nothing deployed yet in any environment",
    )


def _server_uri(env: str) -> str:
    """The environment's workspace URI as the server knows it (its 404 names the existing ones)."""
    from mlyard.cli.context import client
    from mlyard.names import check_env_name

    check_env_name(env)
    with client() as api:
        return str(api.environments.get(env).workspace_uri)


def _open(uri: str) -> "Workspace":
    from mlyard.workspace import open_workspace

    return open_workspace(uri)


def _os_user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
