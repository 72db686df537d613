"""`mlyard pipelines create/list/show/delete/run/permit/variables`, `mlyard runs ...`,
`mlyard connections ...`, `mlyard variable-groups ...` and `mlyard environments set`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.cli.pipelines import app as pipelines_app
from mlyard.cli.repos import environments_app
from mlyard.errors import InvalidInput

runs_app = typer.Typer(help="Pipeline runs: list, show, logs, cancel, permit, approve.", no_args_is_help=True)
variables_app = typer.Typer(help="Pipeline variables set outside YAML.", no_args_is_help=True)
connections_app = typer.Typer(help="Service connections (protected resources).", no_args_is_help=True)
groups_app = typer.Typer(help="Variable groups (protected resources).", no_args_is_help=True)
pipelines_app.add_typer(variables_app, name="variables")

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}
STATE_STYLE = {
    "succeeded": "green",
    "succeededWithIssues": "yellow",
    "failed": "red",
    "canceled": "magenta",
    "skipped": "dim",
    "running": "cyan",
    "waiting": "yellow",
    "queued": "blue",
}


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} expects KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def _state(state: str) -> str:
    style = STATE_STYLE.get(state, "")
    return f"[{style}]{state}[/]" if style else state


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
        row = api.post("/api/v1/pipelines", {"name": name, "repo": repo, "yaml": yaml, "folder": folder})
    if json:
        output.print_json(row)
    else:
        output.console().print(
            f"created pipeline [bold]{row['name']}[/] ({row['repo']}:{row['yaml_path']}"
            + (f", folder {row['folder']}" if row["folder"] else "")
            + ")"
        )


@pipelines_app.command("list")
def pipelines_list(
    folder: Annotated[str | None, typer.Option(help="Only this folder (and below).")] = None, json: JSON = False
) -> None:
    """Pipelines as a tree by folder, with each pipeline's last run."""
    with client() as api:
        rows = api.get("/api/v1/pipelines", folder=folder)
    if json:
        output.print_json(rows)
        return
    if not rows:
        output.console().print("no pipelines yet: `mlyard pipelines create --repo R --yaml PATH --name N`")
        return
    from rich.tree import Tree

    tree = Tree("[bold]pipelines[/]")
    nodes: dict[str, Any] = {"": tree}
    for row in rows:
        parent = ""
        for part in [p for p in row["folder"].split("/") if p]:
            key = f"{parent}/{part}" if parent else part
            if key not in nodes:
                nodes[key] = nodes[parent].add(f"[bold blue]{part}/[/]")
            parent = key
        last = row["last_run"]
        info = f" - #{last['number']} {_state(last['state'])} ({last['source_branch']})" if last else " - no runs"
        nodes[parent].add(f"{row['name']}{info}")
    output.console().print(tree)


@pipelines_app.command("show")
def pipelines_show(name: str, json: JSON = False) -> None:
    """A pipeline: repository, YAML path, variables, permissions and recent runs."""
    with client() as api:
        row = api.get(f"/api/v1/pipelines/{name}")
    if json:
        output.print_json(row)
        return
    output.fields(
        [
            ("name", row["name"]),
            ("folder", row["folder"] or "/"),
            ("repository", row["repo"]),
            ("yaml", row["yaml_path"]),
            ("permissions", row["permissions"] or None),
            ("variables", [f"{v['name']}={'***' if v['secret'] else v['value']}" for v in row["variables"]] or None),
        ]
    )
    output.table(
        row["recent_runs"],
        [
            ("id", "RUN"),
            ("number", "#"),
            ("build_number", "NUMBER"),
            ("state", "STATE"),
            ("reason", "REASON"),
            ("source_branch", "BRANCH"),
            ("queued_at", "QUEUED"),
        ],
        empty="no runs yet",
    )


@pipelines_app.command("delete")
def pipelines_delete(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False, json: JSON = False) -> None:
    """Delete a pipeline and its runs."""
    if not yes and not typer.confirm(f"delete pipeline {name} and all its runs?", default=False):
        raise typer.Exit(1)
    with client() as api:
        row = api.delete(f"/api/v1/pipelines/{name}")
    if json:
        output.print_json(row)
    else:
        output.console().print(f"deleted pipeline {row['name']}")


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
    body = {"branch": branch, "commit": commit, "parameters": pairs(param, "--param"), "variables": pairs(var, "--var")}
    with client() as api:
        run = api.post(f"/api/v1/pipelines/{name}/runs", body)
        if json and not follow:
            output.print_json(run)
            return
        if not json:
            output.console().print(
                f"queued run {run['id']} ({name} #{run['number']}) on {run['source_branch']} "
                f"at {run['source_version'][:10]}"
            )
        if follow:
            final = follow_logs(api, run["id"], quiet=json)
            if json:
                output.print_json(api.get(f"/api/v1/runs/{run['id']}"))
            raise typer.Exit(0 if final in ("succeeded", "succeededWithIssues") else 1)


def follow_logs(api: Any, run_id: int, *, step: str | None = None, quiet: bool = False) -> str:
    """Stream a run's log to stdout until it finishes; returns the final state."""
    state = ""
    for line in api.stream_lines(f"/api/v1/runs/{run_id}/logs", follow="true", step=step):
        if line.startswith(f"## run {run_id} "):
            state = line.split()[-1]
        if not quiet:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return state or str(api.get(f"/api/v1/runs/{run_id}")["state"])


@pipelines_app.command("permit")
def pipelines_permit(
    name: str,
    resource: Annotated[str, typer.Option(help="KIND:NAME, e.g. connection:dev-connection")],
    json: JSON = False,
) -> None:
    """Allow a pipeline to use a protected resource (remembered for all its runs)."""
    with client() as api:
        result = api.post(f"/api/v1/pipelines/{name}/permissions", {"resource": resource})
    if json:
        output.print_json(result)
    else:
        output.console().print(
            f"pipeline {name} may use {result['resource']}" + ("" if result["granted"] else " (already permitted)")
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
        row = api.request(
            "PUT", f"/api/v1/pipelines/{pipeline}/variables/{name}", json={"value": value, "secret": secret}
        )
    if json:
        output.print_json(row)
    else:
        output.console().print(f"set {name} on {pipeline}" + (" (secret)" if secret else ""))


@variables_app.command("delete")
def variables_delete(pipeline: str, name: str, json: JSON = False) -> None:
    """Remove a pipeline variable."""
    with client() as api:
        row = api.delete(f"/api/v1/pipelines/{pipeline}/variables/{name}")
    if json:
        output.print_json(row)
    else:
        output.console().print(f"deleted {name} from {pipeline}")


@variables_app.command("list")
def variables_list(pipeline: str, json: JSON = False) -> None:
    """Variables of a pipeline (secret values are never shown)."""
    with client() as api:
        rows = api.get(f"/api/v1/pipelines/{pipeline}")["variables"]
    if json:
        output.print_json(rows)
    else:
        output.table(
            [{**r, "value": "***" if r["secret"] else r["value"]} for r in rows],
            [("name", "NAME"), ("value", "VALUE"), ("secret", "SECRET")],
            empty="no variables",
        )


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's runs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: int = 50,
    json: JSON = False,
) -> None:
    """Recent runs, newest first."""
    with client() as api:
        rows = api.get("/api/v1/runs", pipeline=pipeline, state=state, limit=limit)
    if json:
        output.print_json(rows)
        return
    for row in rows:
        row["state"] = _state(row["state"])
        row["commit"] = row["source_version"][:10]
    output.table(
        rows,
        [
            ("id", "RUN"),
            ("pipeline", "PIPELINE"),
            ("number", "#"),
            ("build_number", "NUMBER"),
            ("state", "STATE"),
            ("reason", "REASON"),
            ("source_branch", "BRANCH"),
            ("commit", "COMMIT"),
            ("queued_at", "QUEUED"),
        ],
        empty="no runs",
    )


@runs_app.command("show")
def runs_show(run_id: int, json: JSON = False) -> None:
    """A run as a tree of stages, jobs and steps with states and durations."""
    with client() as api:
        run = api.get(f"/api/v1/runs/{run_id}")
    if json:
        output.print_json(run)
        return
    from rich.markup import escape
    from rich.tree import Tree

    head = (
        f"run {run['id']}: {escape(run['pipeline'])} #{run['number']} ({run['build_number'] or '-'}) "
        f"{_state(run['state'])} {_secs(run['duration_seconds'])}"
    )
    tree = Tree(head)
    tree.add(
        f"{run['reason']} on {run['source_branch']} at {run['source_version'][:10]} by {run['requested_for'] or '-'}"
    )
    if run["message"]:
        tree.add(f"[yellow]{escape(run['message'])}[/]")
    for stage in run["stages"]:
        s_node = tree.add(
            f"stage {escape(stage['display_name'])} {_state(stage['state'])} {_secs(stage['duration_seconds'])}"
        )
        for job in stage["jobs"]:
            extra = f" - {escape(job['message'])}" if job["message"] else ""
            j_node = s_node.add(
                f"job {escape(job['display_name'])} {_state(job['state'])} {_secs(job['duration_seconds'])}{extra}"
            )
            for step in job["steps"]:
                issues = "".join(f"\n  {i['type']}: {escape(i['message'])}" for i in step["issues"])
                j_node.add(
                    f"{escape(step['display_name'])} {_state(step['state'])} {_secs(step['duration_seconds'])}{issues}"
                )
    if run["tests"]:
        t = run["tests"]
        tree.add(f"tests: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped")
    if run["artifacts"]:
        tree.add(f"artifacts: {', '.join(run['artifacts'])}")
    output.console().print(tree)


def _secs(value: float | None) -> str:
    return f"[dim]{value:.1f}s[/]" if value is not None else ""


@runs_app.command("logs")
def runs_logs(
    run_id: int,
    step: Annotated[str | None, typer.Option(help="Only this step (name or key).")] = None,
    follow: Annotated[bool, typer.Option(help="Stream until the run ends.")] = False,
) -> None:
    """Print a run's logs (all steps, or one)."""
    with client() as api:
        if follow:
            follow_logs(api, run_id, step=step)
            return
        text = api.text(f"/api/v1/runs/{run_id}/logs", step=step)
    sys.stdout.write(text)


@runs_app.command("cancel")
def runs_cancel(run_id: int, json: JSON = False) -> None:
    """Cancel a run: running steps are killed, pending ones do not start."""
    with client() as api:
        run = api.post(f"/api/v1/runs/{run_id}/cancel")
    if json:
        output.print_json(run)
    else:
        output.console().print(f"cancel requested for run {run_id}")


@runs_app.command("permit")
def runs_permit(run_id: int, json: JSON = False) -> None:
    """Grant every protected resource the run waits for (remembered for its pipeline)."""
    with client() as api:
        result = api.post(f"/api/v1/runs/{run_id}/permit")
    if json:
        output.print_json(result)
    else:
        granted = ", ".join(result["granted"]) or "nothing (it was not waiting for permission)"
        output.console().print(f"run {run_id}: granted {granted}")


@runs_app.command("approve")
def runs_approve(run_id: int, comment: str = "", json: JSON = False) -> None:
    """Approve the deployment a run waits for."""
    _decide(run_id, "approve", comment, json)


@runs_app.command("reject")
def runs_reject(run_id: int, comment: str = "", json: JSON = False) -> None:
    """Reject the deployment a run waits for."""
    _decide(run_id, "reject", comment, json)


def _decide(run_id: int, action: str, comment: str, json: bool) -> None:
    with client() as api:
        result = api.post(f"/api/v1/runs/{run_id}/{action}", {"comment": comment})
    if json:
        output.print_json(result)
    else:
        output.console().print(f"run {run_id}: {action}d {', '.join(result['jobs'])}")


@runs_app.command("artifacts")
def runs_artifacts(
    run_id: int, download: Annotated[Path | None, typer.Option(help="Extract them here.")] = None, json: JSON = False
) -> None:
    """List a run's artifacts, or download them into a directory (one folder per artifact)."""
    import io
    import tarfile

    with client() as api:
        rows = api.get(f"/api/v1/runs/{run_id}/artifacts")
        if download is not None:
            for row in rows:
                data = api.get_bytes(f"/api/v1/runs/{run_id}/artifacts/{row['name']}")
                target = download / row["name"]
                target.mkdir(parents=True, exist_ok=True)
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    tar.extractall(target, filter="data")
                row["path"] = str(target)
    if json:
        output.print_json(rows)
    else:
        output.table(
            rows,
            [("name", "ARTIFACT"), ("size", "BYTES"), ("created_at", "CREATED")]
            + ([("path", "DOWNLOADED TO")] if download else []),
            empty="no artifacts",
        )


@runs_app.command("tests")
def runs_tests(run_id: int, json: JSON = False) -> None:
    """The run's test summary (from PublishTestResults@2)."""
    with client() as api:
        result = api.get(f"/api/v1/runs/{run_id}/tests")
    if json:
        output.print_json(result)
        return
    tests = result["tests"]
    if not tests:
        output.console().print(f"run {run_id} published no test results")
        return
    output.console().print(
        f"{tests['total']} tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
    )
    for failure in tests["failures"]:
        output.console().print(
            f"  [red]failed[/] {failure.get('classname', '')}.{failure.get('name', '')}: {failure.get('message', '')}",
            markup=True,
        )


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
        row = api.post("/api/v1/connections", body)
    if json:
        output.print_json(row)
    else:
        output.console().print(
            f"saved service connection {row['name']} ({len(row['settings'])} settings, "
            f"{len(row['secret_keys'])} secret)"
        )


@connections_app.command("list")
def connections_list(json: JSON = False) -> None:
    """List service connections (secret values are never shown)."""
    with client() as api:
        rows = api.get("/api/v1/connections")
    if json:
        output.print_json(rows)
    else:
        output.table(
            [{**r, "keys": sorted(r["settings"])} for r in rows],
            [("name", "NAME"), ("type", "TYPE"), ("keys", "SETTINGS"), ("secret_keys", "SECRETS")],
            empty="no service connections",
        )


@connections_app.command("show")
def connections_show(name: str, json: JSON = False) -> None:
    """Show a service connection."""
    with client() as api:
        row = api.get(f"/api/v1/connections/{name}")
    if json:
        output.print_json(row)
    else:
        output.fields(
            [
                ("name", row["name"]),
                ("type", row["type"]),
                *[(k, v) for k, v in row["settings"].items()],
                *[(k, "***") for k in row["secret_keys"]],
            ]
        )


@connections_app.command("delete")
def connections_delete(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.delete(f"/api/v1/connections/{name}")
    if json:
        output.print_json(row)
    else:
        output.console().print(f"deleted service connection {row['name']}")


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
        row = api.post("/api/v1/variable-groups", body)
    if json:
        output.print_json(row)
    else:
        output.console().print(f"saved variable group {row['name']}")


@groups_app.command("list")
def groups_list(json: JSON = False) -> None:
    with client() as api:
        rows = api.get("/api/v1/variable-groups")
    if json:
        output.print_json(rows)
    else:
        output.table(
            [{**r, "names": sorted(r["variables"])} for r in rows],
            [("name", "NAME"), ("names", "VARIABLES"), ("secret_variables", "SECRETS")],
            empty="no variable groups",
        )


@groups_app.command("show")
def groups_show(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.get(f"/api/v1/variable-groups/{name}")
    if json:
        output.print_json(row)
    else:
        output.fields(
            [("name", row["name"]), *row["variables"].items(), *[(k, "***") for k in row["secret_variables"]]]
        )


@groups_app.command("delete")
def groups_delete(name: str, json: JSON = False) -> None:
    with client() as api:
        row = api.delete(f"/api/v1/variable-groups/{name}")
    if json:
        output.print_json(row)
    else:
        output.console().print(f"deleted variable group {row['name']}")


@environments_app.command("set")
def environments_set(
    name: str,
    approval: Annotated[str | None, typer.Option(help="required or none: approve each deployment by hand.")] = None,
    json: JSON = False,
) -> None:
    """Change an environment's checks (admin)."""
    if approval not in (None, "required", "none"):
        raise InvalidInput(f"--approval must be 'required' or 'none', not {approval!r}")
    body = {"approval_required": None if approval is None else approval == "required"}
    with client() as api:
        row = api.patch(f"/api/v1/environments/{name}", body)
    if json:
        output.print_json(row)
    else:
        output.console().print(
            f"environment {row['name']}: approval " + ("required" if row["approval_required"] else "not required")
        )
