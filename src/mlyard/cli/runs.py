"""`mlyard runs ...`: list, show, logs (live), cancel, permit, approve/reject, artifacts, tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.errors import InvalidInput
from mlyard.protocol import State

if TYPE_CHECKING:
    from mlyard.client import Client
    from mlyard.views import RunCoverage, RunView

runs_app = typer.Typer(help="Pipeline runs: list, show, logs, cancel, permit, approve.", no_args_is_help=True)

JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
STATE_STYLE: dict[str, str] = {
    State.SUCCEEDED: "green",
    State.SUCCEEDED_WITH_ISSUES: "yellow",
    State.FAILED: "red",
    State.CANCELED: "magenta",
    State.SKIPPED: "dim",
    State.RUNNING: "cyan",
    State.WAITING: "yellow",
    State.QUEUED: "blue",
}


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} expects KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def state_text(state: str) -> str:
    """A state in its colour on a terminal (plain text otherwise)."""
    return output.styled(state, STATE_STYLE.get(state, ""))


def follow_logs(api: Client, run_id: int, *, step: str | None = None, quiet: bool = False) -> str:
    """Stream a run's log to stdout until it finishes; returns the final state."""
    state = ""
    for line in api.runs.follow_logs(run_id, step=step):
        if line.startswith(f"## run {run_id} "):
            state = line.split()[-1]
        if not quiet:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return state or str(api.runs.get(run_id).state)


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's runs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: int = 50,
    json: JSON = False,
) -> None:
    """Recent runs, newest first."""
    with client() as api:
        runs = api.runs.list(pipeline=pipeline, state=state, limit=limit)
    if json:
        output.print_json([run.to_dict() for run in runs])
        return
    rows = [
        {
            **run.to_dict(),
            "state": output.styled(run.state, STATE_STYLE.get(run.state, "")),
            "commit": run.commit,
            "error": run.first_error,
        }
        for run in runs
    ]
    columns = [
        ("id", "RUN"),
        ("pipeline", "PIPELINE"),
        ("build_number", "NUMBER"),
        ("state", "STATE"),
        ("reason", "REASON"),
        ("source_branch", "BRANCH"),
        ("commit", "COMMIT"),
        ("queued_at", "QUEUED"),
    ]
    if any(row["error"] for row in rows):  # invalid pipeline YAML: its first file:line:col error
        columns.append(("error", "ERROR"))
    output.table(rows, columns, empty="no runs")


@runs_app.command("show")
def runs_show(run_id: int, json: JSON = False) -> None:
    """A run as a tree of stages, jobs and steps with states and durations."""
    with client() as api:
        run = api.runs.get(run_id)
    if json:
        output.print_json(run.to_dict())
        return
    output.tree(run_tree(run))


def run_tree(run: RunView) -> output.Node:
    """A run as a tree: stages, jobs, steps with states, durations and issues; every text whole."""
    Node = output.Node
    head = (
        f"run {run.id}: {run.pipeline} #{run.number} ({run.build_number or '-'}) "
        f"{state_text(run.state)}{_secs(run.duration_seconds)}"
    )
    top: list[output.Node] = [
        Node(f"{run.reason} on {run.source_branch} at {run.commit} by {run.requested_for or '-'}")
    ]
    if run.message:
        top.append(Node("\n".join(output.styled(line, "yellow") for line in run.message.splitlines())))
    for stage in run.stages:
        jobs = []
        for job in stage.jobs:
            steps = tuple(
                Node(
                    f"{step.display_name} {state_text(step.state)}{_secs(step.duration_seconds)}"
                    + "".join(f"\n  {i['type']}: {i['message']}" for i in step.issues)
                )
                for step in job.steps
            )
            extra = f" - {job.message}" if job.message else ""
            label = f"job {job.display_name} {state_text(job.state)}{_secs(job.duration_seconds)}{extra}"
            jobs.append(Node(label, steps))
        top.append(
            Node(f"stage {stage.display_name} {state_text(stage.state)}{_secs(stage.duration_seconds)}", tuple(jobs))
        )
    if run.tests:
        t = run.tests
        top.append(Node(f"tests: {t.passed} passed, {t.failed} failed, {t.skipped} skipped"))
    if run.coverage:
        top.append(Node(f"coverage: {coverage_text(run.coverage)}"))
    if run.artifacts:
        top.append(Node(f"artifacts: {', '.join(run.artifacts)}"))
    return Node(head, tuple(top))


def coverage_text(coverage: RunCoverage) -> str:
    """"lines 85.0% (85/100), branches 50.0% (1/2)"; a part with nothing to cover is left out."""
    parts = []
    if coverage.line_rate is not None:
        parts.append(f"lines {coverage.line_rate:.1%} ({coverage.lines_covered}/{coverage.lines_valid})")
    if coverage.branch_rate is not None:
        parts.append(f"branches {coverage.branch_rate:.1%} ({coverage.branches_covered}/{coverage.branches_valid})")
    return ", ".join(parts) or "nothing to cover"


def _secs(value: float | None) -> str:
    """" 1.2 s" (dim on a terminal), "" when it did not run."""
    return f" {output.styled(output.duration(value), 'dim')}" if value is not None else ""


@runs_app.command("logs")
def runs_logs(
    run_id: int,
    step: Annotated[str | None, typer.Option(help="Only this step (name or key).")] = None,
    follow: Annotated[bool, typer.Option(help="Stream until the run ends.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document: jobs, steps, lines.")] = False,
) -> None:
    """Print a run's logs (all steps, or one): per job its start, its steps in order, then "Finalize job"."""
    if json and follow:
        raise InvalidInput("--json prints the log as it is now: use it without --follow")
    with client() as api:
        if json:
            output.print_json(api.runs.log_document(run_id, step=step).to_dict())
            return
        if follow:
            follow_logs(api, run_id, step=step)
            return
        text = api.runs.logs(run_id, step=step)
    sys.stdout.write(text)


@runs_app.command("cancel")
def runs_cancel(run_id: int, json: JSON = False) -> None:
    """Cancel a run: running steps are killed, pending ones do not start."""
    with client() as api:
        run = api.runs.cancel(run_id)
    if json:
        output.print_json(run.to_dict())
    else:
        output.console().print(f"cancel requested for run {run_id}")


@runs_app.command("permit")
def runs_permit(run_id: int, json: JSON = False) -> None:
    """Grant every protected resource the run waits for (remembered for its pipeline)."""
    with client() as api:
        result = api.runs.permit(run_id)
    if json:
        output.print_json(result.to_dict())
    else:
        granted = ", ".join(result.granted) or "nothing (it was not waiting for permission)"
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
        result = api.runs.decide(run_id, action, comment)
    if json:
        output.print_json(result.to_dict())
    else:
        output.console().print(f"run {run_id}: {action}d {', '.join(result.jobs)}")


@runs_app.command("artifacts")
def runs_artifacts(
    run_id: int, download: Annotated[Path | None, typer.Option(help="Extract them here.")] = None, json: JSON = False
) -> None:
    """List a run's artifacts, or download them into a directory (one folder per artifact)."""
    import io
    import tarfile

    from mlyard.archives import UnsafeEntry, safe_extract

    with client() as api:
        rows = []
        for artifact in api.runs.artifacts(run_id):
            row = artifact.to_dict()
            if download is not None:
                data = api.runs.artifact(run_id, artifact.name)
                target = download / artifact.name
                target.mkdir(parents=True, exist_ok=True)
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    try:
                        safe_extract(tar, target)
                    except UnsafeEntry as exc:
                        raise InvalidInput(
                            f"artifact {artifact.name!r} of run {run_id} has an unsafe entry ({exc}); "
                            "nothing of it was written"
                        ) from None
                row["path"] = str(target)
            rows.append(row)
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
        result = api.runs.tests(run_id)
    if json:
        output.print_json(result.to_dict())
        return
    tests = result.tests
    if not tests:
        output.console().print(f"run {run_id} published no test results")
        return
    output.console().print(
        f"{tests.total} tests: {tests.passed} passed, {tests.failed} failed, {tests.skipped} skipped"
    )
    for failure in tests.failures:
        output.console().print(
            f"  [red]failed[/] {failure.get('classname', '')}.{failure.get('name', '')}: {failure.get('message', '')}",
            markup=True,
        )
