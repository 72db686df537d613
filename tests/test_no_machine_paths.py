"""tests/ and benchmarks/ name no absolute path of a machine, so the suite runs in a fresh clone anywhere.

A path such as a developer's venv or home folder made the README's test command fail on every other
machine; files are found relative to this checkout and programs next to the running interpreter.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tests", "benchmarks")
# A machine's own folders: home folders, this machine's work folder and temporary folders. Preceded by
# neither a word character nor one of `:/.~*}-` (URIs such as file:///x/y, globs and templates such as
# {home}/agents/*/work are data, not paths of this machine).
MACHINE_PATH = re.compile(r"(?<![\w:/.~*}-])/(?:root|home|work|tmp|Users|var/folders)(?=/|[\"'\s]|$)", re.MULTILINE)
ALLOWED = "# a path inside the step sandbox"  # a line with this comment names a path of the sandbox, not a machine
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}
# Other projects' files kept verbatim (their CI scripts name paths of their own machines).
THIRD_PARTY = ("tests/data/realworld",)


def machine_paths(text: str) -> list[tuple[int, str]]:
    """(line, text) of every machine path literal in `text`."""
    lines = text.splitlines()
    found = []
    for match in MACHINE_PATH.finditer(text):
        number = text.count("\n", 0, match.start()) + 1
        if lines[number - 1].rstrip().endswith(ALLOWED):
            continue
        found.append((number, lines[number - 1].strip()))
    return found


def test_the_pattern_finds_machine_paths_and_ignores_data() -> None:
    venv = "/".join(("", "work", "venv", "bin", "mlyard"))
    home = "/".join(("", "home", "ann", "project"))
    assert machine_paths(f'MLYARD = Path("{venv}")\nx = 1\n') == [(1, f'MLYARD = Path("{venv}")')]
    assert machine_paths(f"cd {home}\n") == [(1, f"cd {home}")]
    uri = "file://" + "/".join(("", "tmp", "ws"))
    tool = "/".join(("", "opt", "tool", "bin"))
    relative = "/".join(("src", "work", "x"))  # built: a relative path that merely contains a machine folder's name
    assert machine_paths(f"uri = '{uri}'\npath = '{relative}'\nwhere = '{tool}'\n") == []


def test_tests_and_benchmarks_name_no_machine_path() -> None:
    problems = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or SKIPPED_PARTS.intersection(path.parts):
                continue
            if path.relative_to(ROOT).as_posix().startswith(THIRD_PARTY):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary fixtures
            relative = path.relative_to(ROOT)
            problems.extend(f"{relative}:{line}: {content}" for line, content in machine_paths(text))
    assert not problems, "absolute paths of a machine (use paths relative to the checkout or sys.executable):\n" + (
        "\n".join(problems)
    )
