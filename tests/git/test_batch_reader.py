"""The long-lived `git cat-file --batch` readers behind repos.resolve and repos.read_file: the same answers as
one-shot git processes, new pushes seen, re-created repositories not read through a stale process, bounded."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.git import batch, repos
from tests.git import ENV


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(tmp: Path, name: str, files: dict[str, str]) -> tuple[Path, Path]:
    """(work tree, bare repository) with one commit of `files` on main."""
    work = tmp / f"{name}-work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit(work, files, "first")
    bare = tmp / f"{name}.git"
    git(tmp, "clone", "-q", "--bare", str(work), str(bare))
    git(work, "remote", "add", "origin", str(bare))
    return work, bare


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> Iterator[batch.Readers]:
    """A reader pool of this test only (closed at its end)."""
    pool = batch.Readers(limit=2)
    monkeypatch.setattr(batch, "READERS", pool)
    yield pool
    pool.close()


def test_answers_match_one_shot_git(tmp_path: Path, readers: batch.Readers) -> None:
    work, bare = make_repo(tmp_path, "r", {"ci.yml": "steps: []\n", "dir/my file.yml": "x\n"})
    git(work, "tag", "-a", "v1", "-m", "annotated")
    git(work, "push", "-q", "origin", "v1")
    head = git(work, "rev-parse", "HEAD")
    assert repos.resolve(bare, "refs/heads/main") == head
    assert repos.resolve(bare, "main") == head
    assert repos.resolve(bare, head[:10]) == head
    assert repos.resolve(bare, "v1") == head  # an annotated tag is peeled to its commit
    assert repos.resolve(bare, "refs/heads/nope") is None
    assert repos.resolve(bare, "main:ci.yml") is None  # a blob is not a commit
    assert repos.resolve(bare, "--all") is None  # never an option
    assert repos.read_file(bare, head, "ci.yml") == b"steps: []\n"
    assert repos.read_file(bare, "main", "dir/my file.yml") == b"x\n"
    assert repos.read_file(bare, head, "dir") is None  # a folder is not a file
    assert repos.read_file(bare, head, "missing.yml") is None
    assert repos.read_file(bare, head, "ci.yml\nHEAD") is None  # a line break never reaches the batch protocol
    assert len(readers) == 1  # one process served every answer


def test_pushes_after_the_reader_started_are_seen(tmp_path: Path, readers: batch.Readers) -> None:
    work, bare = make_repo(tmp_path, "r", {"ci.yml": "one\n"})
    assert repos.read_file(bare, "main", "ci.yml") == b"one\n"
    second = commit(work, {"ci.yml": "two\n"}, "second")
    git(work, "push", "-q", "origin", "main")
    assert repos.resolve(bare, "main") == second
    assert repos.read_file(bare, "main", "ci.yml") == b"two\n"
    git(bare, "gc", "-q", "--prune=now")  # objects moved into a pack and refs packed under the reader
    third = commit(work, {"ci.yml": "three\n"}, "third")
    git(work, "push", "-q", "origin", "main")
    assert repos.resolve(bare, "main") == third
    assert repos.read_file(bare, second, "ci.yml") == b"two\n"


def test_a_recreated_repository_gets_a_new_reader(tmp_path: Path, readers: batch.Readers) -> None:
    _, bare = make_repo(tmp_path, "r", {"ci.yml": "old\n"})
    assert repos.read_file(bare, "main", "ci.yml") == b"old\n"
    repos.delete(bare)
    assert len(readers) == 0  # deleting a repository closes its reader
    other_work, other = make_repo(tmp_path, "other", {"ci.yml": "new\n"})
    other.rename(bare)  # a new repository under the same name
    assert repos.read_file(bare, "main", "ci.yml") == b"new\n"
    assert repos.resolve(bare, "main") == git(other_work, "rev-parse", "HEAD")


def test_readers_are_bounded_and_a_dead_one_is_replaced(tmp_path: Path, readers: batch.Readers) -> None:
    bares = [make_repo(tmp_path, f"r{index}", {"ci.yml": f"{index}\n"})[1] for index in range(3)]
    for index, bare in enumerate(bares):
        assert repos.read_file(bare, "main", "ci.yml") == f"{index}\n".encode()
    assert len(readers) == 2  # the least recently used one was closed
    reader = readers._readers[bares[2]]
    reader.proc.kill()
    reader.proc.wait()
    assert repos.read_file(bares[2], "main", "ci.yml") == b"2\n"  # a new process answers
    assert readers._readers[bares[2]] is not reader


def test_a_large_object_is_read_by_a_one_shot_process(
    tmp_path: Path, readers: batch.Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bare = make_repo(tmp_path, "r", {"big.yml": "x" * 2000 + "\n"})
    monkeypatch.setattr(batch, "MAX_OBJECT_BYTES", 1000)
    assert repos.read_file(bare, "main", "big.yml") == b"x" * 2000 + b"\n"
    assert repos.read_file(bare, "main", "big.yml") == b"x" * 2000 + b"\n"
