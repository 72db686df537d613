"""Wildcard patterns of CI trigger filters: refs (branches, tags) and repository paths.

Both kinds are translated once into regular expressions and cached (see :func:`ref_pattern`,
:func:`path_pattern`). The wildcard rules follow "Build Azure Repos Git or TFS Git repositories",
section Wildcards: ``*`` matches zero or more characters and ``?`` exactly one.

Refs (branches and tags)
    A pattern matches the whole ref. ``*`` matches any run of characters, ``/`` included, so
    ``releases/*`` matches ``releases/2024/q1``. ``[`` and ``]`` are literal. Matching is
    case-sensitive (git refs are; the Microsoft docs say nothing either way).

Paths
    A pattern names a file or a folder relative to the repository root (a leading ``/`` and a
    trailing ``/`` are ignored; ``/``, empty and ``*`` mean the root). A pattern matches a
    changed path when it matches the path itself or one of its parent folders, so ``src``
    matches ``src/a/b.py`` (folder prefix), and ``docs/*`` is the same as ``docs/``.
    ``*`` and ``?`` stay inside one path segment, ``**`` spans any number of segments (the
    sprint 192 release note names ``**``, ``*`` and ``?``; that ``*`` stops at ``/`` is our
    reading, the docs do not say). Matching is case-sensitive ("Paths in Git are case-sensitive").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

HEADS = "refs/heads/"
TAGS = "refs/tags/"


@dataclass(frozen=True)
class RefPattern:
    """One branch or tag filter entry: the text as written and the full-ref regex."""

    text: str
    regex: re.Pattern[str]

    def matches(self, ref: str) -> bool:
        return self.regex.match(ref) is not None


@dataclass(frozen=True)
class PathPattern:
    """One path filter entry: the text as written, its regex and its depth (specificity)."""

    text: str
    regex: re.Pattern[str]
    depth: int

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _glob_any(pattern: str) -> str:
    """Regex for a glob whose ``*`` spans anything: linear-time (atomic groups, as fnmatch does)."""
    chunks = re.sub(r"\*+", "*", pattern).split("*")

    def literal(chunk: str) -> str:
        return "".join("." if ch == "?" else re.escape(ch) for ch in chunk)

    if len(chunks) == 1:
        return literal(chunks[0]) + r"\Z"
    middle = "".join(f"(?>.*?{literal(chunk)})" for chunk in chunks[1:-1])
    return f"{literal(chunks[0])}{middle}.*{literal(chunks[-1])}" + r"\Z"


def full_ref(name: str, *, prefix: str) -> str:
    """``main`` -> ``refs/heads/main``; a name already starting with ``refs/`` is kept."""
    return name if name.startswith("refs/") else prefix + name


@lru_cache(maxsize=4096)
def ref_pattern(text: str, *, tag: bool = False) -> RefPattern:
    """Compile a branch pattern (``main``, ``refs/heads/main``, ``refs/tags/v*``) or a tag pattern.

    A branch pattern without ``refs/`` means ``refs/heads/<pattern>``; a tag pattern without
    ``refs/tags/`` means ``refs/tags/<pattern>``.
    """
    if tag:
        full = text if text.startswith(TAGS) else TAGS + text
        return RefPattern(text, re.compile(_glob_any(full), re.DOTALL))
    return RefPattern(text, re.compile(_glob_any(full_ref(text, prefix=HEADS)), re.DOTALL))


def _segment_regex(segment: str) -> str:
    """Regex for one path segment: ``*`` and ``?`` stay inside it (atomic groups keep it linear)."""
    chunks = re.sub(r"\*+", "*", segment).split("*")

    def literal(chunk: str) -> str:
        return "".join("[^/]" if ch == "?" else re.escape(ch) for ch in chunk)

    if len(chunks) == 1:
        return literal(chunks[0])
    middle = "".join(f"(?>[^/]*?{literal(chunk)})" for chunk in chunks[1:-1])
    return f"{literal(chunks[0])}{middle}[^/]*{literal(chunks[-1])}"


def path_body(text: str) -> tuple[str, int]:
    """The regex body of a path pattern (without the parent-folder suffix) and its depth."""
    stripped = text.strip("/")
    if stripped in ("", "*", "**"):
        return ".*", 0
    segments = [seg for seg in stripped.split("/") if seg]
    collapsed: list[str] = []
    for seg in segments:
        if not (seg == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(seg)
    body = ""
    for index, seg in enumerate(collapsed):
        last = index == len(collapsed) - 1
        if seg == "**":
            body += ".*" if last else "(?:[^/]*/)*"
        else:
            body += _segment_regex(seg) + ("" if last else "/")
    return body, sum(1 for seg in collapsed if seg != "**")


@lru_cache(maxsize=4096)
def path_pattern(text: str) -> PathPattern:
    """Compile a path filter entry; it matches a path or any path below it."""
    body, depth = path_body(text)
    return PathPattern(text, re.compile(f"(?:{body})(?:/.*)?" + r"\Z", re.DOTALL), depth)


def any_path_regex(texts: Sequence[str]) -> re.Pattern[str] | None:
    """One regex for all the patterns, None when there are none.

    Each pattern is a capture group, in the given order; the first pattern that matches wins
    (regex alternation), so ``match.lastindex - 1`` is the index of the first matching pattern.
    """
    if not texts:
        return None
    bodies = "|".join(f"({path_body(text)[0]})" for text in texts)
    return re.compile(f"(?:{bodies})(?:/.*)?" + r"\Z", re.DOTALL)


def quoted_list(texts: Sequence[str]) -> str:
    """``['a', 'b']``: how filter lists appear in decision reasons."""
    return "[" + ", ".join(f"'{text}'" for text in texts) + "]"


@dataclass(frozen=True)
class RefFilter:
    """A compiled branch or tag filter. ``implied`` is set when ``*`` stands for a missing include."""

    includes: tuple[RefPattern, ...]
    excludes: tuple[RefPattern, ...]
    tag: bool
    implied: bool

    def evaluate(self, ref: str, what: str) -> tuple[bool, str]:
        """Whether ``ref`` (a full ref, named ``what`` in the reason) passes, and why."""
        label = "tags " if self.tag else ""
        for pattern in self.excludes:
            if pattern.matches(ref):
                by = "tags exclude " if self.tag else ""
                return False, f"{what} is excluded by {by}'{pattern.text}'"
        if not self.includes:
            if self.tag:
                return (
                    False,
                    f"{what} does not trigger: the trigger has no tags filter (tags trigger only when included)",
                )
            return False, f"{what} does not trigger: the trigger includes no branches"
        for pattern in self.includes:
            if pattern.matches(ref):
                if self.implied:
                    excluded = quoted_list([p.text for p in self.excludes])
                    return True, f"{what} is not excluded by {excluded} (exclude without include means '*')"
                return True, f"{what} matches {label}include '{pattern.text}'"
        listed = quoted_list([p.text for p in self.includes])
        implied = " (implied by exclude without include)" if self.implied else ""
        return False, f"{what} matches no {label}include {listed}{implied}"


@lru_cache(maxsize=1024)
def ref_filter(include: tuple[str, ...], exclude: tuple[str, ...], *, tag: bool) -> RefFilter:
    """Compile an include/exclude pair; an exclude without include implies include ``*``."""
    implied = not include and bool(exclude)
    texts = ("*",) if implied else include
    return RefFilter(
        tuple(ref_pattern(text, tag=tag) for text in texts),
        tuple(ref_pattern(text, tag=tag) for text in exclude),
        tag,
        implied,
    )


@dataclass(frozen=True)
class PathFilter:
    """A compiled path filter, patterns sorted deepest first (a stable sort keeps the written order
    among equals); ``any_include`` is None when the include is the implied root."""

    includes: tuple[PathPattern, ...]
    excludes: tuple[PathPattern, ...]
    any_include: re.Pattern[str] | None
    any_exclude: re.Pattern[str] | None
    include_texts: tuple[str, ...]
    exclude_texts: tuple[str, ...]

    @property
    def active(self) -> bool:
        return bool(self.includes or self.excludes)

    def evaluate(self, changed_paths: Sequence[str]) -> tuple[bool, str]:
        """Whether at least one changed path is included (and not excluded), and why.

        Two regex matches per path: the combined regexes name the deepest matching pattern.
        """
        first_excluded: tuple[str, str] | None = None
        include_match = self.any_include.match if self.any_include is not None else None
        exclude_match = self.any_exclude.match if self.any_exclude is not None else None
        for raw in changed_paths:
            path = raw.lstrip("/")
            include = None
            if include_match is not None:
                found = include_match(path)
                if found is None:
                    continue
                include = self.includes[(found.lastindex or 1) - 1]
            excluded = exclude_match(path) if exclude_match is not None else None
            if excluded is None:
                return True, self._included(path, include)
            exclude = self.excludes[(excluded.lastindex or 1) - 1]
            if include is not None and include.depth > exclude.depth:
                return True, f"path '{path}' matches include '{include.text}', deeper than exclude '{exclude.text}'"
            if first_excluded is None:
                first_excluded = (path, exclude.text)
        return False, self._nothing_included(changed_paths, first_excluded)

    def _included(self, path: str, include: PathPattern | None) -> str:
        if include is None:
            excluded = quoted_list(self.exclude_texts)
            return f"path '{path}' is not excluded by {excluded} (exclude without include means the root)"
        return f"path '{path}' matches include '{include.text}'"

    def _nothing_included(self, changed_paths: Sequence[str], excluded: tuple[str, str] | None) -> str:
        none_changed = " (the push changed no paths)" if not changed_paths else ""
        if self.any_include is None:
            if excluded is None:
                listed = quoted_list(self.exclude_texts)
                return f"no changed path remains after the path excludes {listed}{none_changed}"
            return f"every changed path is excluded: '{excluded[0]}' is excluded by '{excluded[1]}'"
        listed = quoted_list(self.include_texts)
        if excluded is None:
            return f"no changed path matches the path includes {listed}{none_changed}"
        return (
            f"no changed path matches the path includes {listed} outside the excludes: "
            f"'{excluded[0]}' is excluded by '{excluded[1]}'"
        )


@lru_cache(maxsize=1024)
def path_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> PathFilter:
    """Compile a path include/exclude pair; an exclude without include implies the root."""
    includes = tuple(sorted((path_pattern(text) for text in include), key=lambda p: -p.depth))
    excludes = tuple(sorted((path_pattern(text) for text in exclude), key=lambda p: -p.depth))
    return PathFilter(
        includes,
        excludes,
        any_path_regex([p.text for p in includes]),
        any_path_regex([p.text for p in excludes]),
        include,
        exclude,
    )
