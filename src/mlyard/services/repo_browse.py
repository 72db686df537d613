"""Browsing a hosted repository at any branch, tag or commit: folders, files, README, commits, push events.

A revision and a path come from URLs, so they are data: a revision is a branch or tag name, or a commit
sha, and must resolve to a commit; a path is relative, without `..`, `.`, empty parts, a backslash or
control characters, and at most MAX_PATH characters. Files are read up to MAX_FILE bytes; larger or
binary files are offered for download only (download up to MAX_DOWNLOAD bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mlyard.db.engine import transaction
from mlyard.db.tables import PushEvent
from mlyard.errors import InvalidInput, NotFound
from mlyard.git import browse
from mlyard.git import repos as git
from mlyard.services import events, repos
from mlyard.services.platform import Platform
from mlyard.views import RepoView

MAX_PATH = 1024
MAX_REV = 255
MAX_FILE = 512 * 1024  # bytes of a file shown in a page
MAX_DOWNLOAD = 64 * 1024 * 1024
MAX_README = 256 * 1024
MAX_EVENTS = 30
README_NAMES = ("README.md", "readme.md", "Readme.md", "README.markdown", "README", "README.txt")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_REV = re.compile(r"^[A-Za-z0-9._/+@-]+$")


@dataclass(frozen=True)
class Place:
    """A repository at a revision: the name the user gave and the commit it resolves to."""

    repo: RepoView
    path: Path  # the bare repository (never shown)
    rev: str  # as given (a branch, a tag or a sha), or the default branch
    commit: str

    @property
    def is_branch(self) -> bool:
        return any(b["name"] == self.rev for b in self.repo.branches or [])


@dataclass(frozen=True)
class FileView:
    path: str
    size: int
    text: str | None  # None: binary or too large
    reason: str  # why there is no text ("binary", "too large"), "" with text


def check_path(text: str) -> str:
    """A path inside the repository, as git names it (no leading or trailing slash)."""
    if len(text) > MAX_PATH:
        raise InvalidInput(f"path of {len(text)} characters: at most {MAX_PATH}")
    if any(ord(c) < 32 or c in "\\\x7f" for c in text):
        raise InvalidInput("path has a control character or a backslash: give a path of the repository")
    parts = text.strip("/").split("/") if text.strip("/") else []
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"path {text[:80]!r} has an empty, `.` or `..` part: give a path inside the repository")
    return "/".join(parts)


def open_at(platform: Platform, name: str, rev: str | None) -> Place:
    """The repository `name` at `rev` (default: its default branch); NotFound when either is unknown."""
    info = repos.show_repo(platform, name)
    wanted = rev or info.default_branch
    if len(wanted) > MAX_REV or not _REV.match(wanted) or wanted.startswith(("-", ".")) or ".." in wanted:
        raise NotFound(f"no branch, tag or commit {wanted[:80]!r} in repository {name!r}")
    path = git.repo_path(platform.settings.repos_dir, name)
    candidates = [f"refs/heads/{wanted}", f"refs/tags/{wanted}"] + ([wanted] if _SHA.match(wanted) else [])
    for candidate in candidates:
        commit = git.resolve(path, candidate)
        if commit:
            return Place(repo=info, path=path, rev=wanted, commit=commit)
    if not info.branches:
        raise NotFound(f"repository {name!r} is empty: push a branch first")
    raise NotFound(f"no branch, tag or commit {wanted!r} in repository {name!r}")


def folder(place: Place, path: str) -> tuple[list[browse.TreeEntry], bool]:
    path = check_path(path)
    kind = browse.object_type(place.path, place.commit, path)
    if kind != "tree":
        raise NotFound(_missing(place, path, "folder", kind))
    return browse.tree(place.path, place.commit, path)


def read(place: Place, path: str, limit: int = MAX_FILE) -> FileView:
    path = check_path(path)
    kind = browse.object_type(place.path, place.commit, path)
    if kind != "blob":
        raise NotFound(_missing(place, path, "file", kind))
    found = browse.blob(place.path, place.commit, path, limit)
    if found.truncated:
        return FileView(path=path, size=found.size, text=None, reason="too large")
    if b"\0" in found.data[:8192]:
        return FileView(path=path, size=found.size, text=None, reason="binary")
    try:
        return FileView(path=path, size=found.size, text=found.data.decode("utf-8"), reason="")
    except UnicodeDecodeError:
        return FileView(path=path, size=found.size, text=None, reason="binary")


def download(place: Place, path: str) -> tuple[str, bytes]:
    """The file's name and bytes (up to MAX_DOWNLOAD)."""
    path = check_path(path)
    if browse.object_type(place.path, place.commit, path) != "blob":
        raise NotFound(_missing(place, path, "file", None))
    found = browse.blob(place.path, place.commit, path, MAX_DOWNLOAD)
    if found.truncated:
        raise InvalidInput(f"{path} has {found.size} bytes, more than the {MAX_DOWNLOAD} a download gives: "
                           f"clone the repository instead")  # fmt: skip
    return path.rsplit("/", 1)[-1], found.data


def readme(place: Place, entries: list[browse.TreeEntry]) -> FileView | None:
    """The README of a folder listing (a file named README*), when it is text."""
    names = {e.name: e for e in entries if e.kind == "blob"}
    for candidate in README_NAMES:
        if candidate in names:
            found = read(place, names[candidate].path, MAX_README)
            return found if found.text is not None else None
    return None


def commits(place: Place, path: str, page: int) -> list[browse.LogEntry]:
    path = check_path(path)
    return browse.log(place.path, place.commit, path, skip=max(page - 1, 0) * browse.MAX_LOG)


def commit(platform: Platform, name: str, sha: str) -> tuple[browse.LogEntry, list[browse.Change], str]:
    if not _SHA.match(sha):
        raise NotFound(f"no commit {sha[:80]!r} in repository {name!r}")
    place = open_at(platform, name, sha)
    return browse.changes(place.path, place.commit)


def push_events(platform: Platform, name: str) -> list[dict[str, object]]:
    """The newest push events of a repository, newest first."""
    with transaction(platform.sessions) as session:
        query = select(PushEvent).where(PushEvent.repo == name).order_by(PushEvent.id.desc()).limit(MAX_EVENTS)
        return [events.event_dict(row) for row in session.scalars(query)]


def _missing(place: Place, path: str, what: str, kind: str | None) -> str:
    where = f"{place.repo.name} at {place.rev}"
    if kind is not None:
        return f"{path or '/'} is not a {what} in {where}"
    return f"no {what} {path!r} in {where}"
