"""How the CLI prints: one JSON document with --json, aligned columns otherwise, one red line on error."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlyard.errors import MlyardError
from mlyard.views import duration as duration  # one definition for the CLI and the web UI


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
    lines = [f"{_style('error:', '1;31', sys.stderr)} {exc.message}"]
    lines += [f"  {problem}" for problem in exc.errors if problem != exc.message]
    sys.stderr.write("\n".join(lines) + "\n")


def table(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Print `rows` as aligned columns (like `kubectl get` or `gh ... list`); `columns` are (key, header).

    Plain text on purpose: nothing is cut to the terminal's width (clone URLs and ids stay copyable),
    the output greps well, and lists do not pay rich's import time. Headers are bold on a terminal.
    """
    out = sys.stdout
    if not rows:
        out.write(empty + "\n")
        return
    headers = [header.upper() for _key, header in columns]
    cells = [[_cell(row.get(key)).replace("\n", " ") for key, _h in columns] for row in rows]
    widths = [max(_width(text) for text in column) for column in zip(headers, *cells, strict=False)]
    if title:
        out.write(_style(title, "1") + "\n")
    out.write(_style(_line(headers, widths), "1") + "\n")
    for line in cells:
        out.write(_line(line, widths) + "\n")


def fields(pairs: list[tuple[str, Any]]) -> None:
    """Print `label: value` lines (for `show` commands), labels aligned and bold on a terminal."""
    width = max((len(label) for label, _ in pairs), default=0)
    for label, value in pairs:
        sys.stdout.write(f"{_style(label.ljust(width), '1')}  {_cell(value)}\n")


@dataclass(frozen=True)
class Node:
    """One line of a tree (`runs show`): its label (may hold `styled` text and newlines) and its children."""

    label: str
    children: tuple[Node, ...] = ()


def tree(root: Node) -> None:
    """Print `root` and its children with box-drawing guides, like `tree`. Nothing is cut to the terminal's
    width: a long label is printed whole (the terminal wraps it), a label's further lines keep the guides."""
    lines = [root.label.splitlines()[0] if root.label else ""]
    lines += [f"    {more}" for more in root.label.splitlines()[1:]]
    _subtree(root.children, "", lines)
    sys.stdout.write("\n".join(lines) + "\n")


def _subtree(children: tuple[Node, ...], prefix: str, lines: list[str]) -> None:
    for index, child in enumerate(children):
        last = index == len(children) - 1
        label = child.label.splitlines() or [""]
        lines.append(prefix + ("└── " if last else "├── ") + label[0])
        inner = prefix + ("    " if last else "│   ")
        lines += [inner + ("│   " if child.children else "") + more for more in label[1:]]
        _subtree(child.children, inner, lines)


def timestamp(value: datetime | str | None) -> str:
    """A point in time as "YYYY-MM-DD HH:MM:SS" (to the second, in UTC when the value has a zone): the one
    format of every table. A string that is not an ISO timestamp is returned as it is."""
    if value is None:
        return "-"
    if isinstance(value, str):
        if not _ISO.match(value):
            return value
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return timestamp(moment)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def text(value: Any) -> str:
    """A value as people read it: no Python reprs. None is "-", booleans "yes"/"no", lists "a, b",
    mappings "k=v, k=v", timestamps to the second."""
    return _cell(value)


def styled(text: str, style: str) -> str:
    """`text` in a named style ("green", "bold red", ...) on a terminal; cells of `table` may use it."""
    codes = ";".join(_SGR[word] for word in style.split() if word in _SGR)
    return _style(text, codes) if codes else text


_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
        "cyan": "36"}


def _width(text: str) -> int:
    """Visible width: ANSI styling takes no room."""
    if "\033[" not in text:
        return len(text)
    import re

    return len(re.sub(r"\033\[[0-9;]*m", "", text))


def _line(texts: list[str], widths: list[int]) -> str:
    return "   ".join(text + " " * (width - _width(text)) for text, width in zip(texts, widths, strict=True)).rstrip()


def _style(text: str, sgr: str, stream: Any = None) -> str:
    """`text` in an ANSI style (SGR code) when `stream` (stdout) is a terminal and NO_COLOR is not set."""
    stream = stream or sys.stdout
    key = id(stream)
    if key not in _colour:
        import os

        _colour[key] = stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    return f"\033[{sgr}m{text}\033[0m" if _colour[key] else text


_colour: dict[int, bool] = {}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, datetime | str):
        return timestamp(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
