"""What the CLI prints for people (issue 13, "the first hour"): run as a subprocess with COLUMNS=80."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import click.testing
import pytest
import typer

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
    runner = click.testing.CliRunner()  # typer's converts the app to click commands again at each invoke
    for path in paths:
        result = runner.invoke(root, [*path, "--help"], env=NARROW)
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


def test_values_are_printed_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    """The shared rule of tables and `show` fields: no Python reprs, times to the second, durations in units."""
    from mlyard.cli import output

    output.fields([("aliases", {"production": 1}), ("stage", None), ("tags", ["a", "b"]), ("empty", {})])
    output.table(
        [{"at": "2026-11-29T16:45:59.123456+00:00", "by": None}, {"at": "2026-11-29T17:45:59.5+01:00", "by": "ann"}],
        [("at", "AT"), ("by", "BY")],
    )
    out = capsys.readouterr().out
    assert "production=1" in out and "{" not in out and "None" not in out and "[" not in out
    assert "a, b" in out
    assert out.count("2026-11-29 16:45:59") == 2 and ".123" not in out  # UTC, to the second
    assert [output.duration(s) for s in (0.04, 1.25, 184, 7500)] == ["0.0 s", "1.2 s", "3 min 4 s", "2 h 5 min"]
