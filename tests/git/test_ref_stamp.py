"""`mlyard.git.repos.ref_stamp`: what tells that a branch may have moved without asking git (the completion triggers
look a default branch up again only when it changed), on a real bare repository moved by real git."""

from __future__ import annotations

from pathlib import Path

from mlyard.git.repos import ref_stamp
from tests.conftest import Git


def test_the_stamp_changes_whenever_the_branch_moves_and_only_then(git: Git, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    ref = "refs/heads/master"
    empty = ref_stamp(bare, ref)
    assert empty is not None and ref_stamp(bare, ref) == empty  # no commit yet: still a stamp

    git("clone", "-q", str(bare), "work")
    work = git.cwd / "work"
    git.commit({"a.txt": "1\n"}, "one", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    first = ref_stamp(bare, ref)
    assert first not in (None, empty) and ref_stamp(bare, ref) == first

    git("push", "-q", "origin", "master:other", cwd=work)  # another branch: this one did not move
    assert ref_stamp(bare, ref) == first
    git.commit({"a.txt": "2\n"}, "two", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    second = ref_stamp(bare, ref)
    assert second not in (None, first)

    git("pack-refs", "--all", cwd=bare)  # the ref moves into packed-refs (same commit, other files)
    packed = ref_stamp(bare, ref)
    assert packed not in (None, second)
    git("push", "-q", "origin", "HEAD~1:master", "--force", cwd=work)  # rewritten, as a loose ref again
    assert ref_stamp(bare, ref) not in (None, packed)


def test_no_stamp_where_files_cannot_tell(git: Git, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    git("symbolic-ref", "refs/heads/alias", "refs/heads/master", cwd=bare)
    assert ref_stamp(bare, "refs/heads/alias") is None  # a symbolic ref: its target may move
    assert ref_stamp(bare, "HEAD") is None and ref_stamp(bare, "refs/heads/../../config") is None
    assert ref_stamp(tmp_path / "missing.git", "refs/heads/master") is None
