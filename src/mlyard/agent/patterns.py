"""File matching patterns of the file tasks (CopyFiles@2, DeleteFiles@1, ExtractFiles@1,
PublishTestResults@2...): the minimatch subset Azure's task library uses, on this agent's files.

One pattern a line; empty lines and lines starting with `#` are skipped; a leading `!` excludes what the
patterns above it included (interleaved, in order: `!!` includes again). Patterns that are not absolute
are rooted at the task's folder. `*` and `?` match inside one path segment, `[abc]` / `[!abc]` one
character of a class, `**` as a whole segment any number of segments (none included). As in Azure
(`dot: true`, `nobrace: true`), names starting with a dot match like any other unless `dot=False`, and
braces are literal. Matching is case-sensitive (Linux agents).

Each pattern lists the folder of its leading segments without wildcards (once per folder), at most
MAX_LISTED entries; links to folders are followed while they stay inside the job's work directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_LISTED = 200_000  # files and folders one task may look at
MAX_PATTERNS = 1_000


class PatternError(ValueError):
    """The patterns cannot be applied (too many files under the folder, too many patterns)."""


def _segment(text: str, dot: bool) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            start = index + 2 if text[index + 1 : index + 2] in ("!", "^") else index + 1
            end = text.find("]", start + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = text[start:end].replace("\\", "\\\\")
                out.append(("[^" if start == index + 2 else "[") + body + "]")
                index = end
        elif char == "\\" and index + 1 < len(text):
            index += 1
            out.append(re.escape(text[index]))
        else:
            out.append(re.escape(char))
        index += 1
    hide_dot = "" if dot or text.startswith(".") else r"(?!\.)"
    return hide_dot + "".join(out)


def pattern_regex(pattern: str, root: Path, *, dot: bool = True) -> re.Pattern[str]:
    """The regular expression of one pattern (without its `!`), rooted at `root` unless absolute."""
    if pattern.startswith("/"):
        head, rest = "", pattern.strip("/")
    else:
        head, rest = re.escape(str(root).rstrip("/")), pattern.strip("/")
    parts = [part for part in rest.split("/") if part not in ("", ".")]
    regex = head
    for part in parts:
        if part == "**":
            any_segment = "[^/]+" if dot else r"(?!\.)[^/]+"
            regex += f"(?:/{any_segment})*"
        else:
            regex += "/" + _segment(part, dot)
    return re.compile(regex or "/")


def list_tree(root: Path, *, follow_within: Path | None = None, limit: int = MAX_LISTED) -> list[Path]:
    """Every file and folder under `root` (root excluded), sorted. Links are listed; a link to a folder
    is also descended into when `follow_within` is given and the folder is inside it (each real folder
    once), as Azure's findMatch follows links."""
    found: list[Path] = []
    seen: set[str] = {os.path.realpath(root)}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            found.append(path)
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif follow_within is not None and entry.is_symlink() and entry.is_dir():
                real = os.path.realpath(path)
                inside = os.path.commonpath([str(follow_within), real]) == str(follow_within)
                if inside and real not in seen:
                    seen.add(real)
                    stack.append(path)
        if len(found) > limit:
            raise PatternError(f"more than {limit} files and folders under {root}: choose a narrower folder")
    return sorted(found)


def split_patterns(text: str) -> list[tuple[bool, str]]:
    """(include?, pattern) for every pattern line, comments and empty lines left out."""
    result: list[tuple[bool, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bangs = len(line) - len(line.lstrip("!"))
        result.append((bangs % 2 == 0, line[bangs:]))
    if len(result) > MAX_PATTERNS:
        raise PatternError(f"more than {MAX_PATTERNS} patterns: combine them with wildcards")
    return result


_GLOB_CHARS = set("*?[")


def find_root(pattern: str, root: Path) -> Path:
    """The folder to list for one pattern: its longest leading run of segments without wildcards, the
    pattern rooted at `root` unless absolute (as Azure's findMatch does)."""
    absolute = pattern.startswith("/")
    literal: list[str] = []
    for part in pattern.strip("/").split("/")[:-1]:
        if _GLOB_CHARS & set(part) or part == "..":
            break
        if part not in ("", "."):
            literal.append(part)
    return Path("/", *literal) if absolute else root.joinpath(*literal)


def match_paths(
    root: Path, patterns: str, *, dot: bool = True, within: Path | None = None, follow_links: bool = True
) -> list[Path]:
    """The paths (files and folders) the patterns select, in sorted order. Relative patterns are rooted
    at `root`; a pattern whose folder is not inside `within` (links resolved) is refused; links to
    folders inside `within` are followed unless `follow_links` is false."""
    rules = split_patterns(patterns)
    listings: dict[Path, list[Path]] = {}
    selected: dict[Path, None] = {}
    for include, pattern in rules:
        regex = pattern_regex(pattern, root, dot=dot)
        if not include:
            for path in [path for path in selected if regex.fullmatch(str(path))]:
                del selected[path]
            continue
        base = find_root(pattern, root)
        real = base.resolve()  # a link inside the work directory may lead out of it
        if within is not None and real != within and not real.is_relative_to(within):
            raise PatternError(f"the pattern {pattern!r} looks outside the job's work directory {within}")
        if base not in listings:
            follow = within if follow_links else None
            itself = [base] if base != root and os.path.lexists(base) else []  # never the task's own folder
            listings[base] = itself + (list_tree(base, follow_within=follow) if base.is_dir() else [])
        selected.update(dict.fromkeys(path for path in listings[base] if regex.fullmatch(str(path))))
    return sorted(selected)
