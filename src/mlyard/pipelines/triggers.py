"""CI (push) triggers: the ``trigger:`` section of a pipeline and the decision for one push.

Works on plain Python data (the value PyYAML loads); positions are the parser's business: it turns
a :class:`TriggerSyntaxError` (key path relative to ``trigger``) into a Diagnostic.

Semantics, from Microsoft's "Build Azure Repos Git or TFS Git repositories" (CI triggers) and the
"trigger definition" YAML schema page; where the docs are silent the choice is marked *ours*:

- No ``trigger`` key: CI on every branch, as if ``branches: {include: ['*']}`` were written.
  Tags do not trigger ("If you don't specify any tag triggers, then by default, tags will not
  trigger pipelines"; ``*`` is a branch pattern, i.e. ``refs/heads/*``).
- ``trigger: none`` (any case) disables CI. A list is a list of branch includes. The mapping form
  has ``batch``, ``branches``, ``paths``, ``tags``; each filter has ``include`` and ``exclude``.
- A trigger replaces the implicit one: only included branches trigger. Includes are processed
  first, then excludes are removed. An ``exclude`` without ``include`` (branches, tags or paths)
  is the same as ``include: ['*']``. (The schema page also says "If you specify an exclusion but no
  inclusions, nothing triggers", which contradicts it; we follow the first, repeated on both pages.)
- A mapping without ``branches`` and without ``tags`` (only ``paths`` or ``batch``) triggers on
  every branch (Azure DevOps Services and Server 2020+; MicrosoftDocs/azure-devops-docs#12617).
  A mapping with ``tags`` but no ``branches`` triggers on no branch (only included refs trigger).
- Branch patterns may be written with or without ``refs/heads/``; a branch pattern ``refs/tags/...``
  matches tags. Tag patterns may be written with or without ``refs/tags/``. With both filters the
  trigger fires when either the branch filter or the tag filter is satisfied.
- Paths (wildcards: see :mod:`mlyard.pipelines.patterns`): relative to the root, folder prefix,
  case-sensitive, order irrelevant. An excluded folder can be re-included by a deeper include
  ("If you exclude a path, you cannot also include it unless you qualify it to a deeper folder"):
  the deepest matching pattern wins, an exclude wins a tie (*ours*). A push runs when at least one
  changed path is included. Paths only filter pushes whose ref matched; a push changing no path
  (a new branch) runs only when there is no path filter. Path filters do not apply to tag pushes
  (*ours*: a tag has no change set; the docs treat tag and path filters as alternatives).
  ``changed_paths=None`` means unknown: path filters do not block.
- Skip markers (:data:`SKIP_MARKERS`): current docs skip a push when the message or description of
  *any* commit of the push contains one (older docs: the HEAD commit). Callers pass the messages of
  all pushed commits joined by newlines (or the head commit's). Matching ignores case (*ours*).
  They apply to tag pushes too.
- Refs: ``refs/heads/<branch>`` or ``refs/tags/<tag>``; a bare name means a branch. Deleted refs
  are the caller's business. Branch and tag matching is case-sensitive (*ours*, as git refs are).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlyard.pipelines.patterns import HEADS, TAGS, full_ref, path_filter, ref_filter

__all__ = [
    "SKIP_MARKERS",
    "Decision",
    "Filter",
    "Trigger",
    "TriggerSyntaxError",
    "parse_trigger",
    "trigger_decision",
]

SKIP_MARKERS: tuple[str, ...] = (
    "[skip ci]",
    "[ci skip]",
    "skip-checks: true",
    "skip-checks:true",
    "[skip azurepipelines]",
    "[azurepipelines skip]",
    "[skip azpipelines]",
    "[azpipelines skip]",
    "[skip azp]",
    "[azp skip]",
    "***NO_CI***",
)
_SKIP_LOWER = tuple((marker.lower(), marker) for marker in SKIP_MARKERS)

TOP_KEYS: tuple[str, ...] = ("batch", "branches", "paths", "tags")
FILTER_KEYS: tuple[str, ...] = ("include", "exclude")
_SHAPES = "'none', a list of branch names or a mapping (batch, branches, paths, tags)"


@dataclass(frozen=True)
class Filter:
    """Include/exclude lists, as written."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trigger:
    """A parsed ``trigger:`` section. ``explicit`` is False when the file has none."""

    enabled: bool
    branches: Filter
    paths: Filter
    tags: Filter
    batch: bool = False
    explicit: bool = True


@dataclass(frozen=True)
class Decision:
    """Whether a push starts a CI run, and a human-readable reason."""

    run: bool
    reason: str


class TriggerSyntaxError(Exception):
    """A malformed ``trigger`` value. Not a UserError: the parser adds the position.

    ``key_path`` is relative to the ``trigger`` key, e.g. ``("branches", "include", 2)``.
    ``problems`` lists every problem found (this one first), so all can be reported at once.
    """

    def __init__(self, key_path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key_path = key_path
        self.message = message
        self.problems: tuple[TriggerSyntaxError, ...] = (self,)

    def __str__(self) -> str:
        path = ".".join(["trigger", *(str(key) for key in self.key_path)])
        return f"{path}: {self.message}"


DEFAULT_TRIGGER = Trigger(True, Filter(include=("*",)), Filter(), Filter(), explicit=False)
DISABLED_TRIGGER = Trigger(False, Filter(), Filter(), Filter())


# --- parsing ---------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string '{value if len(value) <= 60 else value[:57] + '...'}'"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


class _Problems:
    """Collects every problem of one trigger value."""

    def __init__(self) -> None:
        self.found: list[TriggerSyntaxError] = []

    def add(self, key_path: tuple[str | int, ...], message: str) -> None:
        self.found.append(TriggerSyntaxError(key_path, message))

    def raise_if_any(self) -> None:
        if self.found:
            first = self.found[0]
            first.problems = tuple(self.found)
            raise first


def _unknown_key(key: Any, supported: tuple[str, ...]) -> str:
    listed = ", ".join(supported)
    if not isinstance(key, str):
        return f"keys must be strings, got {_kind(key)}; supported keys: {listed}"
    close = difflib.get_close_matches(key, supported, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; supported keys: {listed}"


def _key_of(key: Any) -> str | int:
    return key if isinstance(key, str | int) and not isinstance(key, bool) else repr(key)


def _strings(value: Any, at: tuple[str | int, ...], problems: _Problems) -> tuple[str, ...]:
    """A list of non-empty strings without variables; problems name the item index."""
    if not isinstance(value, list | tuple):
        hint = f"; write a list: [{value}]" if isinstance(value, str) else ""
        problems.add(at, f"expected a list of strings, got {_kind(value)}{hint}")
        return ()
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            hint = " (quote it in the YAML)" if isinstance(item, int | float) else ""
            problems.add((*at, index), f"expected a string, got {_kind(item)}{hint}")
        elif not item.strip():
            problems.add((*at, index), "expected a non-empty string")
        elif "$(" in item:
            problems.add(
                (*at, index),
                "variables cannot be used in triggers: they are evaluated at runtime, after the trigger has fired",
            )
        else:
            items.append(item)
    return tuple(items)


def _filter(value: Any, name: str, problems: _Problems) -> Filter:
    if not isinstance(value, dict):
        problems.add((name,), f"expected a mapping with include and/or exclude, got {_kind(value)}")
        return Filter()
    lists: dict[str, tuple[str, ...]] = {}
    for key, item in value.items():
        if key in FILTER_KEYS:
            lists[key] = _strings(item, (name, key), problems)
        else:
            problems.add((name, _key_of(key)), _unknown_key(key, FILTER_KEYS))
    return Filter(include=lists.get("include", ()), exclude=lists.get("exclude", ()))


_TRUE = ("true", "y", "yes", "on")
_FALSE = ("false", "n", "no", "off")


def _batch(value: Any, problems: _Problems) -> bool:
    """A boolean; strings as in the official schema (true/y/yes/on, false/n/no/off, any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    problems.add(("batch",), f"expected true or false, got {_kind(value)}")
    return False


def _mapping(value: dict[Any, Any], problems: _Problems) -> Trigger:
    filters: dict[str, Filter] = {}
    batch = False
    for key, item in value.items():
        if key == "batch":
            batch = _batch(item, problems)
        elif key in TOP_KEYS:
            filters[key] = _filter(item, key, problems)
        else:
            problems.add((_key_of(key),), _unknown_key(key, TOP_KEYS))
    branches = filters.get("branches")
    if branches is None:
        branches = Filter() if "tags" in filters else Filter(include=("*",))
    return Trigger(True, branches, filters.get("paths", Filter()), filters.get("tags", Filter()), batch=batch)


def parse_trigger(value: Any, *, present: bool) -> Trigger:
    """Parse the value of ``trigger:``; ``present=False`` when the file has no ``trigger`` key.

    Raises :class:`TriggerSyntaxError` (the first problem; ``.problems`` holds all of them).
    """
    if not present:
        return DEFAULT_TRIGGER
    problems = _Problems()
    trigger = DISABLED_TRIGGER
    if isinstance(value, str):
        if value.strip().lower() != "none":
            problems.add((), f"expected {_SHAPES}, got {_kind(value)}; for one branch write a list: [{value}]")
    elif isinstance(value, list | tuple):
        trigger = Trigger(True, Filter(include=_strings(value, (), problems)), Filter(), Filter())
    elif isinstance(value, dict):
        trigger = _mapping(value, problems)
    else:
        hint = "; remove the key for CI on every branch" if value is None else ""
        problems.add((), f"expected {_SHAPES}, got {_kind(value)}{hint}")
    problems.raise_if_any()
    return trigger


# --- decisions -------------------------------------------------------------------------------


def skip_marker(commit_message: str) -> str | None:
    """The first of :data:`SKIP_MARKERS` found in the message (ignoring case), if any."""
    lowered = commit_message.lower()
    for marker_lower, marker in _SKIP_LOWER:
        if marker_lower in lowered:
            return marker
    return None


def _describe(ref: str) -> str:
    if ref.startswith(HEADS):
        return f"branch '{ref[len(HEADS) :]}'"
    if ref.startswith(TAGS):
        return f"tag '{ref[len(TAGS) :]}'"
    return f"ref '{ref}'"


def _ref_decision(trigger: Trigger, ref: str, what: str) -> tuple[bool, str]:
    """Either the branch filter or (for a tag) the tag filter must be satisfied."""
    branches = trigger.branches
    ok, why = ref_filter(branches.include, branches.exclude, tag=False).evaluate(ref, what)
    if not trigger.explicit:
        if ok:
            return True, "no trigger section: CI runs on every branch"
        return (
            False,
            f"no trigger section: CI runs on every branch, and {what} is not a branch (tags do not trigger by default)",
        )
    if ok or not ref.startswith(TAGS):
        return ok, why
    tags = trigger.tags
    tag_ok, tag_why = ref_filter(tags.include, tags.exclude, tag=True).evaluate(ref, what)
    if tag_ok:
        return True, tag_why
    if not any(p.startswith(TAGS) for p in (*branches.include, *branches.exclude)):
        return False, tag_why
    return False, f"{why}; {tag_why}" if tags.include or tags.exclude else why


def trigger_decision(
    trigger: Trigger, ref: str, changed_paths: Sequence[str] | None, commit_message: str = ""
) -> Decision:
    """Whether a push of ``ref`` (a full ref or a bare branch name) starts a CI run, and why.

    ``changed_paths`` None means unknown (path filters do not block); ``[]`` means no path changed.
    """
    if not trigger.enabled:
        return Decision(False, "trigger: none")
    full = full_ref(ref, prefix=HEADS)
    ok, reason = _ref_decision(trigger, full, _describe(full))
    if not ok:
        return Decision(False, reason)
    marker = skip_marker(commit_message)
    if marker is not None:
        return Decision(False, f"commit message contains '{marker}': CI skipped for this push")
    paths = path_filter(trigger.paths.include, trigger.paths.exclude)
    if not paths.active:
        return Decision(True, reason)
    if full.startswith(TAGS):
        return Decision(True, f"{reason}; path filters do not apply to tags")
    if changed_paths is None:
        return Decision(True, f"{reason}; changed paths unknown, path filters not applied")
    ok, why = paths.evaluate([changed_paths] if isinstance(changed_paths, str) else changed_paths)
    return Decision(ok, f"{reason}; {why}")
