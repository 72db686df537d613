"""`mlyard agent --url URL --token T`: the command's options. The process against a real server is in
test_remote_agent.py."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mlyard.cli.agent import agent


def test_agent_command_help() -> None:
    app = typer.Typer()
    app.command("agent")(agent)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["agent", "--help"])
    assert result.exit_code == 0
    for option in ("--url", "--token", "--name", "--work-dir"):
        assert option in result.output
