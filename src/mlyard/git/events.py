"""Describe a ref update: its commits and the paths it changed.

For a new branch (or tag) the paths are those changed since it forked from the default branch;
for the default branch's first push, every path in the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlyard.git.repos import ZERO_SHA, run_git

MAX_COMMITS = 500


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    old_sha: str
    new_sha: str


@dataclass(frozen=True)
class PushRecord:
    """What the post-receive hook wrote to the spool."""

    push_id: str
    repo: str
    pusher: str
    updates: tuple[RefUpdate, ...]
    options: tuple[str, ...] = ()  # the push options (`git push -o ...`), at most 8


def parse_spool(push_id: str, text: str) -> PushRecord:
    repo = pusher = ""
    updates = []
    options: list[str] = []
    for line in text.splitlines():
        if line.startswith("repo "):
            repo = line[5:].strip()
        elif line.startswith("pusher "):
            pusher = line[7:].strip()
        elif line.startswith("option "):
            options.append(line[7:].strip()[:200])
        elif line.strip():
            old, new, ref = line.split(" ", 2)
            updates.append(RefUpdate(ref=ref.strip(), old_sha=old, new_sha=new))
    return PushRecord(push_id, repo, pusher, tuple(updates), tuple(options[:8]))


def describe(path: Path, update: RefUpdate, default_branch: str) -> tuple[list[dict[str, str]], list[str]]:
    """(commits as [{sha, message}], changed paths) of one ref update in the bare repo at `path`."""
    if update.new_sha == ZERO_SHA:
        return [], []
    new = f"{update.new_sha}^{{commit}}"
    base = _base(path, update, default_branch)
    if base is None:
        paths = _z(run_git(["ls-tree", "-r", "-z", "--name-only", new], cwd=path, check=False).stdout)
        log_range = [new]
    else:
        paths = _z(run_git(["diff", "--name-only", "-z", "--no-renames", base, new], cwd=path, check=False).stdout)
        log_range = [f"{base}..{new}"]
    out = run_git(
        ["log", f"--max-count={MAX_COMMITS}", "--format=%H%x1f%B%x1e", *log_range, "--"], cwd=path, check=False
    ).stdout.decode("utf-8", "replace")
    commits = []
    for chunk in out.split("\x1e"):
        chunk = chunk.strip("\n")
        if "\x1f" in chunk:
            sha, message = chunk.split("\x1f", 1)
            commits.append({"sha": sha.strip(), "message": message.strip()})
    return commits, sorted(set(paths))


def _base(path: Path, update: RefUpdate, default_branch: str) -> str | None:
    if update.old_sha != ZERO_SHA:
        proc = run_git(["cat-file", "-e", f"{update.old_sha}^{{commit}}"], cwd=path, check=False)
        return update.old_sha if proc.returncode == 0 else None
    if update.ref == f"refs/heads/{default_branch}":
        return None
    proc = run_git(
        ["merge-base", f"refs/heads/{default_branch}", f"{update.new_sha}^{{commit}}"], cwd=path, check=False
    )
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def _z(data: bytes) -> list[str]:
    return [p for p in data.decode("utf-8", "surrogateescape").split("\0") if p]
