"""`mlyard pipelines create/list/show/delete/run/permit/variables`: registered pipelines on the server.

They extend the Typer app of mlyard.cli.pipelines (the offline language commands)."""

from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.cli.pipelines import app as pipelines_app
from mlyard.cli.runs import follow_logs, pairs, state_text
from mlyard.protocol import SUCCESSFUL_STATES

variables_app = typer.Typer(help="Pipeline variables set outside YAML.", no_args_is_help=True)
pipelines_app.add_typer(variables_app, name="variables")

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@pipelines_app.command("create")
def pipelines_create(
    repo: Annotated[str, typer.Option(help="The repository holding the YAML file.")],
    yaml: Annotated[str, typer.Option(help="Path of the YAML file in the repository.")],
    name: Annotated[str, typer.Option(help="Pipeline name (unique).")],
    folder: Annotated[str, typer.Option(help="Folder, e.g. team/app (nested with '/').")] = "",
    json: JSON = False,
) -> None:
    """Register a pipeline from a YAML file in a hosted repository."""
    with client() as api:
        row = api.pipelines.create(name, repo=repo, yaml=yaml, folder=folder)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(
            f"created pipeline [bold]{row.name}[/] ({row.repo}:{row.yaml_path}"
            + (f", folder {row.folder}" if row.folder else "")
            + ")"
        )


@pipelines_app.command("list")
def pipelines_list(
    folder: Annotated[str | None, typer.Option(help="Only this folder (and below).")] = None, json: JSON = False
) -> None:
    """Pipelines as a tree by folder, with each pipeline's last run."""
    with client() as api:
        rows = api.pipelines.list(folder=folder)
    if json:
        output.print_json([row.to_dict() for row in rows])
        return
    if not rows:
        output.console().print("no pipelines yet: `mlyard pipelines create --repo R --yaml PATH --name N`")
        return
    from mlyard.views import PipelineView, folder_tree

    children = folder_tree(rows)  # folder key -> sub-folder keys and pipelines, in the order the server lists them

    def label(row: PipelineView) -> str:
        last = row.last_run
        if last is None:
            return f"{row.name} - no runs"
        return f"{row.name} - #{last.number} {state_text(last.state)} ({last.source_branch})"

    def node(key: str, text: str) -> output.Node:
        return output.Node(text, tuple(
            node(item, output.styled(item.rsplit("/", 1)[-1] + "/", "bold blue")) if isinstance(item, str)
            else output.Node(label(item))
            for item in children[key]
        ))  # fmt: skip

    output.tree(node("", output.styled("pipelines", "bold")))


@pipelines_app.command("show")
def pipelines_show(name: str, json: JSON = False) -> None:
    """A pipeline: repository, YAML path, variables, permissions, recent runs and schedules (next fires in UTC)."""
    with client() as api:
        row = api.pipelines.get(name)
    if json:
        output.print_json(row.to_dict())
        return
    output.fields(
        [
            ("name", row.name),
            ("folder", row.folder or "/"),
            ("repository", row.repo),
            ("yaml", row.yaml_path),
            ("permissions", row.permissions or None),
            ("variables", [f"{v.name}={'***' if v.secret else v.value}" for v in row.variables or []] or None),
        ]
    )
    output.table(
        [run.to_dict() for run in row.recent_runs or []],
        [
            ("id", "RUN"),
            ("build_number", "NUMBER"),
            ("state", "STATE"),
            ("reason", "REASON"),
            ("source_branch", "BRANCH"),
            ("queued_at", "QUEUED"),
        ],
        empty="no runs yet",
    )
    if row.schedules:
        output.table(
            [
                {
                    **schedule.to_dict(),
                    "name": schedule.display_name or schedule.cron,
                    "branch": schedule.branch.removeprefix("refs/heads/"),
                    "next": schedule.next_fires[0] if schedule.next_fires else "never",
                    "runs": _runs_when(schedule.always, schedule.batch),
                }
                for schedule in row.schedules
            ],
            [("name", "SCHEDULE"), ("cron", "CRON"), ("branch", "BRANCH"), ("next", "NEXT (UTC)"),
             ("runs", "RUNS"), ("last_outcome", "LAST")],
            title="schedules",
        )


def _runs_when(always: bool, batch: bool) -> str:
    return "always" if always else "if changed" + (", one at a time" if batch else "")


@pipelines_app.command("delete")
def pipelines_delete(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False, json: JSON = False) -> None:
    """Delete a pipeline and its runs."""
    if not yes and not typer.confirm(f"delete pipeline {name} and all its runs?", default=False):
        raise typer.Exit(1)
    with client() as api:
        row = api.pipelines.delete(name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"deleted pipeline {row.name}")


@pipelines_app.command("run")
def pipelines_run(
    name: str,
    branch: Annotated[str | None, typer.Option(help="Branch to run (default: the default branch).")] = None,
    commit: Annotated[str | None, typer.Option(help="Exact commit to run.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Runtime parameter K=V (repeat).")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="Variable K=V for this run (repeat).")] = None,
    follow: Annotated[bool, typer.Option(help="Stream the log until the run ends.")] = False,
    json: JSON = False,
) -> None:
    """Queue a run by hand (Build.Reason Manual)."""
    parameters, variables = pairs(param, "--param"), pairs(var, "--var")
    with client() as api:
        run = api.pipelines.run(name, parameters, branch=branch, commit=commit, variables=variables)
        if json and not follow:
            output.print_json(run.to_dict())
            return
        if not json:
            output.console().print(
                f"queued run {run.id} ({name} #{run.number}) on {run.source_branch} at {run.commit}"
            )
        if follow:
            final = follow_logs(api, run.id, quiet=json)
            if json:
                output.print_json(api.runs.get(run.id).to_dict())
            raise typer.Exit(0 if final in SUCCESSFUL_STATES else 1)


@pipelines_app.command("permit")
def pipelines_permit(
    name: str,
    resource: Annotated[str, typer.Option(help="KIND:NAME, e.g. connection:dev-connection")],
    json: JSON = False,
) -> None:
    """Allow a pipeline to use a protected resource (remembered for all its runs)."""
    with client() as api:
        result = api.pipelines.permit(name, resource)
    if json:
        output.print_json(result.to_dict())
    else:
        output.console().print(
            f"pipeline {name} may use {result.resource}" + ("" if result.granted else " (already permitted)")
        )


@variables_app.command("set")
def variables_set(
    pipeline: str,
    name: str,
    value: str,
    secret: Annotated[bool, typer.Option(help="Encrypt at rest, never show, mask in logs.")] = False,
    json: JSON = False,
) -> None:
    """Set a pipeline variable outside YAML."""
    with client() as api:
        row = api.pipelines.set_variable(pipeline, name, value, secret=secret)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"set {name} on {pipeline}" + (" (secret)" if secret else ""))


@variables_app.command("delete")
def variables_delete(pipeline: str, name: str, json: JSON = False) -> None:
    """Remove a pipeline variable."""
    with client() as api:
        row = api.pipelines.delete_variable(pipeline, name)
    if json:
        output.print_json(row.to_dict())
    else:
        output.console().print(f"deleted {name} from {pipeline}")


@variables_app.command("list")
def variables_list(pipeline: str, json: JSON = False) -> None:
    """Variables of a pipeline (secret values are never shown)."""
    with client() as api:
        rows = api.pipelines.get(pipeline).variables or []
    if json:
        output.print_json([r.to_dict() for r in rows])
    else:
        output.table(
            [{**r.to_dict(), "value": "***" if r.secret else r.value} for r in rows],
            [("name", "NAME"), ("value", "VALUE"), ("secret", "SECRET")],
            empty="no variables",
        )
