"""`mlyard agent --url URL --token T`: the command function, registered on a Typer app the way the CLI's
main module registers it, run as a real process against the test's agent API server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from typer.testing import CliRunner

from mlyard.cli.agent import agent
from tests.agent.conftest import job, script
from tests.agent.fake_server import AGENT_TOKEN, FakeServer

REGISTER = """
import sys, typer
from mlyard.cli.agent import agent
app = typer.Typer()
app.command("agent")(agent)
@app.command("other")
def other() -> None: ...
app(sys.argv[1:])
"""


def test_agent_command_help() -> None:
    app = typer.Typer()
    app.command("agent")(agent)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["agent", "--help"])
    assert result.exit_code == 0
    for option in ("--url", "--token", "--name", "--work-dir"):
        assert option in result.output


def test_agent_process_runs_a_job_and_stops_on_sigterm(agent_api: tuple[FakeServer, str], tmp_path: Path) -> None:
    state, url = agent_api
    state.jobs.append(job(script("hello", "echo hello from the agent process"), job_id=31).to_dict())
    env = {key: value for key, value in os.environ.items() if key not in ("MLYARD_URL", "MLYARD_AGENT_TOKEN")}
    argv = [sys.executable, "-c", REGISTER, "agent", "--url", url, "--token", AGENT_TOKEN, "--name", "remote-1",
            "--work-dir", str(tmp_path / "work")]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while 31 not in state.completed and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert state.completed.get(31, {}).get("result") == "succeeded"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert f"agent remote-1 working in {tmp_path / 'work'}, claiming jobs from {url}" in output
    logs = [line for route, _, data in state.calls if route == "logs" for _, line in data["lines"]]
    assert "hello from the agent process" in logs
