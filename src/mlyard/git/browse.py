"""Reading a bare repository for the web UI's file browser: trees, files, commits and one commit's changes.

Every call is a git argv (mlyard.git.repos.run_git: explicit env, cwd, timeout); the revision and path are
checked by the caller (mlyard.services.repo_browse) and passed after `--` or inside `REV:PATH` so that they
are never read as options. Outputs are bounded: trees to MAX_ENTRIES entries, logs to a page, files to the
size the caller asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlyard.git.repos import run_git

MAX_ENTRIES = 2000  # entries of one folder listed
MAX_LOG = 100  # commits of one page
MAX_CHANGED = 500  # files listed for one commit


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str  # from the repository's root
    kind: str  # "tree" (a folder), "blob" (a file) or "commit" (a submodule)
    size: int | None  # bytes of a file


@dataclass(frozen=True)
class Blob:
    path: str
    size: int
    data: bytes  # the first `limit` bytes
    truncated: bool


@dataclass(frozen=True)
class LogEntry:
    sha: str
    author: str
    date: str
    subject: str


@dataclass(frozen=True)
class Change:
    status: str  # A, M, D, R...
    path: str


def object_type(repo: Path, rev: str, path: str) -> str | None:
    """"tree", "blob" or None (absent) for `path` at commit `rev` ("" is the root)."""
    proc = run_git(["cat-file", "-t", f"{rev}:{path}"], cwd=repo, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def tree(repo: Path, rev: str, path: str) -> tuple[list[TreeEntry], bool]:
    """The entries of folder `path` at `rev` (folders first, then by name) and whether MAX_ENTRIES cut them."""
    proc = run_git(["ls-tree", "-z", "--long", f"{rev}:{path}" if path else f"{rev}^{{tree}}"], cwd=repo)
    entries = []
    for record in proc.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, name_bytes = record.partition(b"\t")
        _mode, kind, _sha, size = meta.decode().split(None, 3)
        name = name_bytes.decode("utf-8", "replace")
        entries.append(TreeEntry(name=name, path=f"{path}/{name}" if path else name, kind=kind,
                                 size=int(size) if size.strip().isdigit() else None))  # fmt: skip
    entries.sort(key=lambda e: (e.kind != "tree", e.name.lower()))
    return entries[:MAX_ENTRIES], len(entries) > MAX_ENTRIES


def blob(repo: Path, rev: str, path: str, limit: int) -> Blob:
    """The first `limit` bytes of file `path` at `rev`, with its whole size."""
    spec = f"{rev}:{path}"
    size = int(run_git(["cat-file", "-s", spec], cwd=repo).stdout.decode().strip() or 0)
    data = run_git(["cat-file", "blob", spec], cwd=repo).stdout if size <= limit else b""
    return Blob(path=path, size=size, data=data[:limit], truncated=size > limit)


def log(repo: Path, rev: str, path: str, *, skip: int = 0, limit: int = MAX_LOG) -> list[LogEntry]:
    """Commits reachable from `rev` (touching `path` when given), newest first."""
    args = ["log", f"--max-count={min(limit, MAX_LOG)}", f"--skip={max(skip, 0)}", "-z",
            "--format=%H%x1f%an <%ae>%x1f%cI%x1f%s", rev, "--"]  # fmt: skip
    if path:
        args.append(path)
    out = run_git(args, cwd=repo).stdout.decode("utf-8", "replace")
    entries = []
    for record in out.split("\0"):
        parts = record.strip("\n").split("\x1f")
        if len(parts) == 4:
            entries.append(LogEntry(*parts))
    return entries


def changes(repo: Path, sha: str) -> tuple[LogEntry, list[Change], str]:
    """One commit: its header, the files it changed (against its first parent) and its whole message."""
    head = run_git(["show", "-s", "--format=%H%x1f%an <%ae>%x1f%cI%x1f%s%x1f%B", sha, "--"], cwd=repo)
    sha_, author, date, subject, body = head.stdout.decode("utf-8", "replace").split("\x1f", 4)
    proc = run_git(["diff-tree", "-z", "--no-commit-id", "--name-status", "-r", "--root", "-M", sha, "--"], cwd=repo)
    fields = [f for f in proc.stdout.decode("utf-8", "replace").split("\0") if f]
    found: list[Change] = []
    index = 0
    while index < len(fields) and len(found) < MAX_CHANGED:
        status = fields[index]
        width = 2 if status[:1] in ("R", "C") else 1
        found.append(Change(status=status[:1], path=fields[index + width] if index + width < len(fields) else ""))
        index += 1 + width
    return LogEntry(sha_, author, date, subject), found, body.strip()
