"""`mlyard quickstart`: from nothing to a live endpoint in one command, with progress."""

import json as jsonlib
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from mlyard.cli import output


def quickstart(
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory (default: $MLYARD_HOME or ~/.mlyard).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of a new home's server.")] = 8765,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop the server after the summary.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document.")] = False,
) -> None:
    """Init, start the server, create the demo project, train, promote, deploy and score: all of it."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mlyard.quickstart import STEPS, Quickstart
    from mlyard.settings import resolve_home

    con = output.err_console() if json else output.console()
    started = time.monotonic()
    qs = Quickstart(home=resolve_home(home), port=port, say=lambda line: con.print(f"  [dim]{line}[/]"))
    timings: dict[str, float] = {}
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=con, transient=False
        ) as progress:
            for method, label in STEPS:
                task = progress.add_task(label, total=1)
                t0 = time.monotonic()
                getattr(qs, method)()
                timings[method] = round(time.monotonic() - t0, 2)
                progress.update(task, completed=1, description=f"[green]✓[/] {label}")
    except BaseException:
        qs.stop_server()
        raise
    total = round(time.monotonic() - started, 1)
    summary = {
        **qs.facts,
        "model": qs.model,
        "environment": qs.env,
        "home": str(qs.home),
        "seconds": total,
        "step_seconds": timings,
    }
    if json:
        output.print_json(summary)
    else:
        _print_summary(summary)
    if exit_after or qs.server is None:
        qs.stop_server()
        return
    con.print("the server keeps running: press Ctrl-C to stop it")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        qs.stop_server()


def _print_summary(s: dict) -> None:
    con = output.console()
    con.print(f"\n[bold green]mlyard is running[/] ({s['seconds']} s)")
    rows = [
        ("server", s["url"]),
        ("web UI", f"{s['url']}/ (sign in with the token in {s['home']}/cli.json)"),
        ("home", s["home"]),
        ("project", f"{s['url']}/git/{s['model']}.git"),
        ("code", s.get("workspace")),
        ("model", f"{s['model']} version {s['version']} in Production ({s['environment']})"),
        ("endpoint", s.get("scoring_uri")),
        ("prediction", jsonlib.dumps(s.get("prediction"))),
    ]
    output.fields(rows)
    con.print("\ntry:")
    for line in (
        "mlyard pipelines list",
        f"mlyard runs list --pipeline {s['model']}-promote-model",
        f"mlyard models show {s['model']}",
        "mlyard deployments list",
        f"curl -s -X POST {s.get('scoring_uri')} -H 'Content-Type: application/json' "
        f"-d '{jsonlib.dumps(s.get('sample_request'))}'",
    ):
        con.print(f"  {line}", markup=False)
