"""Safe extraction of tar archives (a commit's files, artifacts): the same refusals on every Python.

tarfile's extraction filters came in Python 3.11.4 (Debian 12 ships 3.11.2), so the checks are ours:
an entry with an absolute name or one leading outside the target, a link that is absolute or leads
outside, and a special file (device, FIFO) are refused before anything is written. Where tarfile has
the "data" filter it is applied too, as a second guard.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

PROBLEMS = ("absolute link", "outside link", "outside path", "special file")


class UnsafeEntry(Exception):
    """An archive entry that cannot be written out safely; `problem` is one of PROBLEMS."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name!r}: {problem}")
        self.name = name
        self.problem = problem


def check_members(members: list[tarfile.TarInfo], dest: Path) -> None:
    """Raise UnsafeEntry for the first member that would write outside `dest` or is not a plain entry."""
    root = os.path.normpath(dest.resolve())
    for member in members:
        target = os.path.normpath(os.path.join(root, member.name))
        if os.path.isabs(member.name) or os.path.commonpath([root, target]) != root:
            raise UnsafeEntry(member.name, "outside path")
        if member.issym() or member.islnk():
            if os.path.isabs(member.linkname):
                raise UnsafeEntry(member.name, "absolute link")
            base = os.path.dirname(target) if member.issym() else root
            link = os.path.normpath(os.path.join(base, member.linkname))
            if os.path.commonpath([root, link]) != root:
                raise UnsafeEntry(member.name, "outside link")
        elif not (member.isfile() or member.isdir()):
            raise UnsafeEntry(member.name, "special file")


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract every member of `tar` into `dest` after check_members (raises UnsafeEntry, tarfile.TarError)."""
    members = tar.getmembers()
    check_members(members, dest)
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members, filter="data")
    else:  # Python before 3.11.4: every member checked above
        tar.extractall(dest, members)
