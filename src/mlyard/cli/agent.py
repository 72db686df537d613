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
    unsandboxed_steps: Annotated[
        bool,
        typer.Option(
            "--unsandboxed-steps",
            help="Run steps without the bubblewrap sandbox where it is unavailable (they get the agent's OS "
            "rights: its home, its files, its processes).",
        ),
    ] = False,
) -> None:
    """Run a pipeline agent: claim jobs from the server and run them until interrupted (Ctrl-C / SIGTERM
    finishes the current job first). Steps run in a bubblewrap sandbox (docs/agent.md, "Trust model")."""
    import logging
    import os
    import signal
    import socket
    import threading

    from mlyard.agent.runner import run_agent
    from mlyard.agent.warm import WarmPool
    from mlyard.client import Client
    from mlyard.errors import InvalidInput, PermissionDenied, ServerUnavailable
    from mlyard.protocol import agent_name_problem
    from mlyard.sandbox import Sandbox, bwrap_binary, default_home, probe, server_paths

    agent_name = name or f"{socket.gethostname()}-{os.getpid()}"
    problem = agent_name_problem(agent_name)
    if problem:
        raise InvalidInput(f"{problem} (--name)")
    home = default_home()
    sandbox = Sandbox.detect(hidden=server_paths(home), unsandboxed=unsandboxed_steps)
    if not sandbox.enabled:
        typer.echo(f"warning: steps are NOT sandboxed ({probe(bwrap_binary())}); they run with this agent's OS "
                   "rights (--unsandboxed-steps)", err=True)  # fmt: skip
    try:  # a wrong token is fatal now rather than a warning every 30 s; an unreachable server is retried
        with Client(url, token, timeout=10) as api:
            me = api.me()
        if "agent" not in me.scopes:
            raise PermissionDenied(
                f"the token of {me.username} has no `agent` scope: create one with "
                "`mlyard tokens create --name my-agent --scope agent`"
            )
    except ServerUnavailable as exc:
        typer.echo(f"warning: {exc.message}; retrying until it answers", err=True)
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
    warm = WarmPool.create(sandbox, work_root)  # Python steps' warm sandboxes (docs/agent.md)
    try:
        run_agent(url, token, name=agent_name, work_root=work_root, stop_event=stop, sandbox=sandbox, warm=warm)
    finally:
        if warm is not None:
            warm.stop()
