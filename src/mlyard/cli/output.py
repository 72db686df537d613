"""How the CLI prints: one JSON document with --json, rich tables otherwise, one red line on error."""

from __future__ import annotations

import json
import sys
from typing import Any

from mlyard.errors import MlyardError


def print_json(document: Any) -> None:
    """Print one JSON document on stdout (for scripts): stable key order, UTF-8, trailing newline."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")


def console() -> Any:
    """The shared rich console (imported lazily: rich costs start-up time)."""
    from rich.console import Console

    global _console
    if _console is None:
        _console = Console(highlight=False, soft_wrap=True)
    return _console


def err_console() -> Any:
    from rich.console import Console

    global _err_console
    if _err_console is None:
        _err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err_console


_console: Any = None
_err_console: Any = None


def print_error(exc: MlyardError) -> None:
    """One red line on stderr, then the detailed problems (if any), each on its own line."""
    from rich.markup import escape

    con = err_console()
    con.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    for problem in exc.errors:
        if problem != exc.message:
            con.print(f"  {escape(problem)}", soft_wrap=True)


def table(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Print `rows` as a rich table; `columns` are (key, header) pairs."""
    if not rows:
        console().print(empty)
        return
    from rich.table import Table

    tbl = Table(title=title, show_edge=False, header_style="bold")
    for _key, header in columns:
        tbl.add_column(header)
    for row in rows:
        tbl.add_row(*[_cell(row.get(key)) for key, _h in columns])
    console().print(tbl)


def fields(pairs: list[tuple[str, Any]]) -> None:
    """Print `label: value` lines (for `show` commands)."""
    from rich.markup import escape

    width = max((len(label) for label, _ in pairs), default=0)
    for label, value in pairs:
        console().print(f"[bold]{escape(label).ljust(width)}[/]  {escape(_cell(value))}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
