"""`mlyard agent`: run a pipeline agent that claims jobs from a server (on this or another machine)."""

from pathlib import Path
from typing import Annotated

import typer


def agent(
    url: Annotated[str, typer.Option("--url", envvar="MLYARD_URL", help="URL of the mlyard server.")],
    token: Annotated[str, typer.Option("--token", envvar="MLYARD_AGENT_TOKEN", help="The agent's token.")],
    name: Annotated[str | None, typer.Option("--name", help="Agent name (default: host name and process id).")] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Where job work directories go (default: <home>/agents/<name>/work)."),
    ] = None,
) -> None:
    """Run a pipeline agent: claim jobs from the server and run them until interrupted (Ctrl-C / SIGTERM
    finishes the current job first)."""
    import logging
    import os
    import signal
    import socket
    import threading

    from mlyard.agent.runner import run_agent
    from mlyard.client import Client
    from mlyard.errors import InvalidInput, PermissionDenied, ServerUnavailable
    from mlyard.protocol import agent_name_problem

    agent_name = name or f"{socket.gethostname()}-{os.getpid()}"
    problem = agent_name_problem(agent_name)
    if problem:
        raise InvalidInput(f"{problem} (--name)")
    try:  # a wrong token is fatal now rather than a warning every 30 s; an unreachable server is retried
        with Client(url, token, timeout=10) as api:
            me = api.get("/api/v1/me")
        if "agent" not in me.get("scopes", []):
            raise PermissionDenied(
                f"the token of {me.get('username')} has no `agent` scope: create one with "
                "`mlyard tokens create --name my-agent --scope agent`"
            )
    except ServerUnavailable as exc:
        typer.echo(f"warning: {exc.message}; retrying until it answers", err=True)
    home = Path(os.environ.get("MLYARD_HOME") or Path.home() / ".mlyard")
    work_root = work_dir or home / "agents" / agent_name / "work"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logging.getLogger("mlyard.agent").info("stopping after the current job (signal %s again to abort)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    typer.echo(f"agent {agent_name} working in {work_root}, claiming jobs from {url}")
    run_agent(url, token, name=agent_name, work_root=work_root, stop_event=stop)
