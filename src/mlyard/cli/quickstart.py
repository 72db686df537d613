"""`mlyard quickstart`: from nothing to a live endpoint in one command, with progress."""

from __future__ import annotations

import json as jsonlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlyard.cli import output

if TYPE_CHECKING:
    from rich.console import Console


def quickstart(
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory (default: $MLYARD_HOME or ~/.mlyard).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of a new home's server.")] = 8765,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop the server after the summary.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document.")] = False,
) -> None:
    """Init, start the server, create the demo project, train, promote, deploy and score: all of it."""
    from mlyard.quickstart import STEPS, Quickstart
    from mlyard.settings import resolve_home

    con = output.err_console() if json else output.console()
    started = time.monotonic()
    qs = Quickstart(home=resolve_home(home), port=port, say=lambda line: con.print(f"  {line}", style="dim",
                                                                                   markup=False, highlight=False))
    timings: dict[str, float] = {}
    scored = 0.0  # seconds from the start to a scored endpoint (the end of the `score` step)
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM stops everything it started, like Ctrl-C
    try:
        with _steps(con) as step:
            for number, (method, label) in enumerate(STEPS, 1):
                with step(f"[{number}/{len(STEPS)}] {label}") as done:
                    t0 = time.monotonic()
                    getattr(qs, method)()
                    timings[method] = round(time.monotonic() - t0, 2)
                    scored = round(time.monotonic() - started, 1) if method == "score" else scored
                    done(timings[method])
    except BaseException:
        qs.stop_server()
        raise
    total = round(time.monotonic() - started, 1)
    summary = {
        **qs.facts,
        "model": qs.model,
        "environment": qs.env,
        "home": str(qs.home),
        "reused": qs.reused,
        "seconds": total,
        "seconds_to_scored_endpoint": scored,
        "step_seconds": timings,
    }
    if json:
        output.print_json(summary)
    else:
        _print_summary(summary)
    if exit_after or qs.server is None:
        qs.stop_server()
        return
    con.print("the server keeps running: press Ctrl-C (or send SIGTERM) to stop it and its endpoints")
    sys.stdout.flush()  # the summary reaches a pipe or file now, not when the server stops
    sys.stderr.flush()
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        qs.stop_server()
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same way out as Ctrl-C: the `finally` blocks stop the servers


@contextmanager
def _steps(con: Console) -> Iterator[Callable[[str], AbstractContextManager[Callable[[float], None]]]]:
    """One context per step: a live spinner on a terminal; otherwise a line when a step starts and one when
    it is done (progress in a log or a pipe, each line once)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if con.is_terminal:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=con,
                      transient=False) as progress:  # fmt: skip

            @contextmanager
            def live(label: str) -> Iterator[Callable[[float], None]]:
                task = progress.add_task(label, total=1)
                yield lambda seconds: progress.update(task, completed=1, description=f"[green]✓[/] {label}")

            yield live
        return

    @contextmanager
    def plain(label: str) -> Iterator[Callable[[float], None]]:
        con.print(f"{label} ...", markup=False, highlight=False)
        yield lambda seconds: con.print(f"{label}: done in {seconds:.1f} s", markup=False, highlight=False)

    yield plain


def _print_summary(s: dict) -> None:
    con = output.console()
    con.print(f"\n[bold green]mlyard is running[/] ({s['seconds']} s), a scored endpoint after "
              f"{s['seconds_to_scored_endpoint']} s")
    rows = [
        ("server", s["url"]),
        ("web UI", f"{s['url']}/login"),
        ("user", s["username"]),
        ("token", f"{s['token']} (sign in with it; also in {s['home']}/cli.json)"),
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
