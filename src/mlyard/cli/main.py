"""Entry point of the `mlyard` console script.

Sub-command groups are imported only when used (see `lazy.py`), and each imports its heavy libraries
(FastAPI, SQLAlchemy, MLflow) inside the command functions, so client commands start fast.
"""

import gc
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlyard import __version__
from mlyard.cli import output
from mlyard.cli.lazy import LazyGroup
from mlyard.errors import InvalidInput, MlyardError

app = typer.Typer(
    name="mlyard",
    cls=LazyGroup,  # sub-command groups are imported only when used (see mlyard.cli.lazy)
    help="mlyard: self-hosted ML projects (git, CI/CD pipelines, model registry, serving) on one machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_root_commands() -> None:
    from mlyard.cli import agent as agent_cmd
    from mlyard.cli import identity, infra
    from mlyard.cli import quickstart as quickstart_cmd

    app.command("create")(infra.create)
    app.command("whoami")(identity.whoami)
    app.command("status")(identity.status)
    app.command("agent")(agent_cmd.agent)
    app.command("quickstart")(quickstart_cmd.quickstart)


_register_root_commands()

HOME = Annotated[Path | None, typer.Option("--home", help="Data directory (default: $MLYARD_HOME or ~/.mlyard).")]
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _version(value: bool) -> None:
    if value:
        print(f"mlyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: HOME = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options; --home applies to every command (like MLYARD_HOME)."""
    if home is not None:
        os.environ["MLYARD_HOME"] = str(home)


@app.command()
def init(
    home: HOME = None,
    username: Annotated[str, typer.Option(help="The administrator's user name.")] = "admin",
    host: Annotated[str, typer.Option(help="Address the server will bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the server will listen on.")] = 8765,
    default_branch: Annotated[str, typer.Option(help="Default branch of new repositories.")] = "master",
    database_url: Annotated[str, typer.Option(help="State database URL (default: SQLite in the home).")] = "",
    json: JSON = False,
) -> None:
    """Create a data directory with an admin user, a first token and the dev/test/prod environments."""
    from mlyard.services.bootstrap import init_home
    from mlyard.settings import Settings, resolve_home

    settings = Settings(
        home=resolve_home(home), host=host, port=port, default_branch=default_branch, database_url=database_url
    )
    result = init_home(settings, username=username)
    if json:
        output.print_json(result.as_dict())
        return
    con = output.console()
    if not result.created:
        con.print(
            f"{result.home} is already initialised: nothing changed "
            f"(server URL {result.url}, CLI config {result.cli_config})"
        )
        return
    con.print(f"initialised [bold]{result.home}[/]")
    con.print(f"  admin user   {result.username}")
    con.print(f"  server URL   {result.url}")
    con.print(f"  CLI config   {result.cli_config} (mode 0600)")
    con.print("  first token  (shown once, also stored in the CLI config)")
    con.print(f"  {result.token}", markup=False, soft_wrap=True)
    con.print("next: [bold]mlyard server[/]")


@app.command()
def server(
    home: HOME = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default from init: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from init: 8765).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    agents: Annotated[int, typer.Option(help="Local agents (parallel jobs); 0 = none.")] = 2,
    job_lease: Annotated[
        int | None,
        typer.Option(
            "--job-lease",
            min=3,
            max=3600,
            help="Seconds a claimed job stays its agent's without a heartbeat (default 30; agents beat "
            "every third of it). Past it the job fails with 'agent lost'.",
        ),
    ] = None,
    unsandboxed_steps: Annotated[
        bool,
        typer.Option(
            "--unsandboxed-steps",
            help="Run steps and `jobs run` entry points without the bubblewrap sandbox where it is unavailable "
            "(single-user machines only: they can then read the data directory and its secrets).",
        ),
    ] = False,
) -> None:
    """Run the mlyard server (API, git hosting) in the foreground."""
    import logging

    from mlyard.registry.tracking_server import ServerZygote, remove_socket_folder, server_mark, take_early, warm_count
    from mlyard.sandbox import server_step_sandbox
    from mlyard.settings import Settings, is_initialised, resolve_home

    settings = Settings.load(resolve_home(home)).with_overrides(
        host=host, port=port, job_lease_seconds=job_lease, unsandboxed_steps=True if unsandboxed_steps else None
    )
    # What refuses the start, before the imports (seconds): an early MLflow zygote, still importing, is killed.
    if not is_initialised(settings.home):
        raise InvalidInput(f"{settings.home} is not an mlyard home: run `mlyard init` first")
    server_step_sandbox(settings.home, unsandboxed=settings.unsandboxed_steps, agents=agents)
    # The zygote of the environments' MLflow servers, started first (before the CLI's imports: mlyard.cli): it
    # imports MLflow's server app while this process imports the platform, and forks the first environment's
    # MLflow server as soon as the server starts (docs/registry.md).
    zygote = take_early()
    if zygote is None and warm_count() != 0:
        zygote = ServerZygote.start(mark=server_mark(settings.home))
    try:
        from mlyard.imports import collector_paused

        with collector_paused():  # the platform's imports live as long as the server (mlyard.imports)
            import uvicorn

            from mlyard.app import create_app

            app_ = create_app(settings, agents=agents, mlflow_zygote=zygote)
    except BaseException:
        if zygote is not None:
            zygote.close()
            remove_socket_folder(zygote.folder)
        raise
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    con = output.err_console()
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        con.print(f"[yellow]warning:[/] binding {settings.host} exposes the server beyond this machine")
    con.print(f"mlyard server on {settings.url} (home {settings.home}); API docs at {settings.url}/docs")
    config = uvicorn.Config(
        app_,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=log_level.lower() == "debug",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )

    from mlyard.asgi_server import QuietServer

    class Server(QuietServer):
        def handle_exit(self, sig: int, frame: object) -> None:
            app_.begin_shutdown()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    server_ = Server(config)
    server_.run()
    if not server_.started:
        raise typer.Exit(1)


def main() -> None:
    """Run the CLI; expected errors become one red line and a documented exit code."""
    try:
        app(prog_name="mlyard")  # ends with SystemExit
    except SystemExit:
        # The process ends now: exit without the interpreter's last garbage collections of everything imported
        # (copier's, scikit-learn's objects: up to half a second of CPU for `infra create-project`, `quickstart`).
        gc.freeze()
        raise
    except MlyardError as exc:
        output.print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
