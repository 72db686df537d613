"""What the CLI prints for people (issue 13, "the first hour"): run as a subprocess with COLUMNS=80."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import Server, mlyard

NARROW = {"COLUMNS": "80"}


def _commands(command: click.Command, path: list[str], ctx: click.Context) -> Iterator[list[str]]:
    yield path
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, [*path, name], click.Context(sub, info_name=name, parent=ctx))


def test_no_help_shows_an_escaped_bracket() -> None:
    """Every command's --help (walked through the typer app) shows "[default: ...]", never "\\[default: ...]"."""
    from mlyard.cli.main import app

    root = typer.main.get_command(app)
    paths = list(_commands(root, [], click.Context(root, info_name="mlyard")))
    assert len(paths) > 50  # the walk reached the lazily loaded sub-apps
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env=NARROW)
        assert result.exit_code == 0, (path, result.output)
        assert "\\[" not in result.output, (path, result.output)


def test_root_command_help_in_a_narrow_terminal(tmp_path: Path) -> None:
    out = mlyard("init", "--help", home=tmp_path / "home", env=NARROW).stdout
    assert "[default: 8765]" in out
    assert "\\[" not in out


def test_a_cli_without_a_config_says_how_to_get_one(tmp_path: Path) -> None:
    out = mlyard("runs", "list", home=tmp_path / "empty", env=NARROW, check=False)
    assert out.returncode == 5
    assert "no CLI config" in out.stderr
    assert "run `mlyard init` or set MLYARD_URL and MLYARD_TOKEN" in out.stderr
    assert "authentication required" not in out.stderr


@pytest.mark.slow
def test_a_wrong_token_still_says_authentication(server: Server) -> None:
    out = server.cli("runs", "list", token="not-a-token", check=False)
    assert out.returncode == 5
    assert "no CLI config" not in out.stderr
