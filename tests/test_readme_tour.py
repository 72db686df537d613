"""The README's commands cannot drift from the CLI: every `mlyard ...` line of its code blocks names a real
command with options and arguments the command accepts (click parses each line as the CLI would, without
running it), and the pipeline files the tour names exist in the project the tour makes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from mlyard.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "src" / "mlyard" / "project_template" / "template"
PLACEHOLDERS = {"ID": "1"}  # the tour's stand-in for a run id a command printed


def readme_commands() -> list[str]:
    """The `mlyard` command lines of the README's bash blocks (comments, `&&` chains and `.venv/bin/` cut off)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for raw in block.splitlines():
            for part in re.split(r"\s&&\s", re.sub(r"\s+#\s.*$", "", raw)):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("mlyard "):
                    lines.append(part)
    return lines


COMMANDS = readme_commands()


def test_the_readme_has_its_tour() -> None:
    assert len(COMMANDS) >= 20 and "mlyard quickstart" in COMMANDS


def _parse(words: list[str]) -> click.Context:
    """Resolve the sub-commands and let click parse the rest (unknown options, missing arguments, bad types
    and choices fail the way they fail for a user)."""
    command: click.Command = typer.main.get_command(app)
    ctx = command.make_context("mlyard", [], resilient_parsing=True)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"no command {words[0]!r} under {ctx.command_path!r}"
        command, words = sub, words[1:]
        ctx = click.Context(command, info_name=sub.name, parent=ctx)
    return command.make_context(ctx.info_name, list(words), parent=ctx.parent)


@pytest.mark.parametrize("line", COMMANDS)
def test_each_readme_command_parses(line: str) -> None:
    words = [PLACEHOLDERS.get(word, word) for word in shlex.split(line)[1:]]
    try:
        _parse(words)
    except click.exceptions.Exit:  # --help and the like
        pass
    except click.UsageError as exc:
        pytest.fail(f"README: `{line}`: {exc.format_message()}")


def test_the_pipeline_files_the_tour_names_exist_in_the_project() -> None:
    """The tour runs `pipelines validate/explain-trigger` in a clone of the project `mlyard create` made."""
    named = {word for line in COMMANDS for word in shlex.split(line) if word.endswith(".yml")}
    assert named
    for path in named:
        if "*" in path:
            assert list(TEMPLATE.glob(path + ".jinja")) or list(TEMPLATE.glob(path)), path
        else:
            assert (TEMPLATE / (path + ".jinja")).exists() or (TEMPLATE / path).exists(), path
