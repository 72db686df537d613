"""Bare repositories on disk. Every git call is an argv list with explicit env, cwd and timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlyard.archives import UnsafeEntry, safe_extract
from mlyard.errors import OperationFailed
from mlyard.git import batch
from mlyard.names import check_repo_name

HOOKS_DIR = Path(__file__).parent / "hooks"
ZERO_SHA = "0" * 40
GIT_TIMEOUT = 120


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A predictable environment for git: no user/system config, no prompts, C locale."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.update(extra or {})
    return env


def run_git(
    args: list[str], *, cwd: Path, timeout: float = GIT_TIMEOUT, input: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, env=git_env(), input=input, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise OperationFailed(f"git {args[0]} timed out after {timeout:.0f} s in {cwd}") from exc
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise OperationFailed(f"git {' '.join(args[:2])} failed in {cwd}: {err}")
    return proc


def repo_path(repos_dir: Path, name: str) -> Path:
    """The bare repo of `name` (validated first: a name never escapes `repos_dir`)."""
    return repos_dir / f"{check_repo_name(name)}.git"


def init_bare(path: Path, *, default_branch: str, allow_force_push: bool = False) -> None:
    """Create a bare repo atomically: built in a temporary folder, then renamed into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        run_git(["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(tmp)], cwd=path.parent)
        configure(tmp, allow_force_push=allow_force_push)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def configure(path: Path, *, allow_force_push: bool) -> None:
    """(Re)apply mlyard's config and hook to a bare repo: safe to call on an existing repo."""
    settings = {
        "http.receivepack": "true",
        "http.uploadpack": "true",
        "receive.denyNonFastForwards": "false" if allow_force_push else "true",
        "receive.denyDeletes": "false",
        "receive.fsckObjects": "true",
        "uploadpack.allowFilter": "true",
        "core.logAllRefUpdates": "true",
    }
    for key, value in settings.items():
        run_git(["config", key, value], cwd=path)
    hooks = path / "hooks"
    hooks.mkdir(exist_ok=True)
    for sample in hooks.glob("*.sample"):
        sample.unlink()
    target = hooks / "post-receive"
    shutil.copyfile(HOOKS_DIR / "post-receive", target)
    target.chmod(0o755)


def delete(path: Path) -> None:
    """Remove a repo: renamed aside first so a half-deleted repo is never served."""
    if not path.exists():
        return
    batch.READERS.forget(path)
    trash = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.deleted")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str
    subject: str


def branches(path: Path) -> list[dict[str, str]]:
    """Branches with their head commit, newest first."""
    fmt = "%(refname:lstrip=2)%00%(objectname)%00%(committerdate:iso-strict)%00%(subject)"
    out = run_git(["for-each-ref", "--sort=-committerdate", f"--format={fmt}", "refs/heads"], cwd=path)
    result = []
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        name, sha, date, subject = [*line.split("\0"), "", "", ""][:4]
        result.append({"name": name, "sha": sha, "date": date, "subject": subject})
    return result


def tags(path: Path) -> list[str]:
    out = run_git(["for-each-ref", "--format=%(refname:lstrip=2)", "refs/tags"], cwd=path)
    return out.stdout.decode("utf-8", "replace").split()


def last_commit(path: Path, ref: str) -> Commit | None:
    proc = run_git(["log", "-1", "--format=%H%x00%an <%ae>%x00%cI%x00%s", ref, "--"], cwd=path, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    sha, author, date, subject = proc.stdout.decode("utf-8", "replace").rstrip("\n").split("\0", 3)
    return Commit(sha, author, date, subject)


def resolve(path: Path, rev: str) -> str | None:
    """The commit `rev` names (a branch, tag, ref or commit id), or None."""
    if rev and not rev.startswith("-"):  # an option is never a revision (rev-parse would refuse it too)
        try:
            found = batch.READERS.ask(path, f"{rev}^{{commit}}", git_env())
            return found[0] if found is not None and found[1] == "commit" else None
        except batch.BatchUnavailable:
            pass  # a one-shot git process answers instead
    proc = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=path, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def ref_stamp(path: Path, ref: str) -> tuple[object, ...] | None:
    """What changes whenever the full ref name `ref` (``refs/heads/main``) of the bare repository `path` may have
    moved: the repository's inode, the loose ref's content (its commit id) and the
    (inode, size, modification time) of ``packed-refs`` (git writes it as a new file renamed into place). None
    when that cannot tell (refs in a reftable, a symbolic ref, a name that is not a plain ref path): then resolve
    the ref each time."""
    if not ref.startswith("refs/") or ".." in ref.split("/") or "\\" in ref or (path / "reftable").exists():
        return None
    try:
        repository = path.stat()
        try:
            with open(path / ref, "rb") as fh:
                loose: bytes | None = fh.read(512)
        except (FileNotFoundError, NotADirectoryError):
            loose = None
        try:
            packed = (path / "packed-refs").stat()
            packed_stamp: tuple[int, int, int] | None = (packed.st_ino, packed.st_size, packed.st_mtime_ns)
        except FileNotFoundError:
            packed_stamp = None
    except OSError:  # no repository, a folder where the ref's file would be...
        return None
    if loose is not None and loose.startswith(b"ref:"):  # a symbolic ref: its target may move
        return None
    return repository.st_ino, loose, packed_stamp


def read_file(path: Path, rev: str, file_path: str) -> bytes | None:
    """The content of `file_path` at `rev`, or None when it does not exist there (or is not a file)."""
    if rev and not rev.startswith("-"):
        try:
            found = batch.READERS.ask(path, f"{rev}:{file_path}", git_env())
            return found[2] if found is not None and found[1] == "blob" else None
        except batch.BatchUnavailable:
            pass
    proc = run_git(["cat-file", "blob", f"{rev}:{file_path}"], cwd=path, check=False)
    return proc.stdout if proc.returncode == 0 else None


MAX_CHECKED_TREES = 500  # folders of a commit checked for links through the batch reader (else: exported)


def _tree_entries(data: bytes) -> list[tuple[str, str, str]] | None:
    """(mode, name, object id) of each entry of a tree object, in the tree's order; None when malformed."""
    entries, position = [], 0
    while position < len(data):  # entries: `<mode> <name>\0<20-byte id>`
        space = data.find(b" ", position)
        nul = data.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > len(data):
            return None
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries.append((data[position:space].decode("ascii", "replace"), name, data[nul + 1 : nul + 21].hex()))
        position = nul + 21
    return entries


def _tree(path: Path, rev: str) -> list[tuple[str, str, str]] | None:
    try:
        found = batch.READERS.ask(path, rev, git_env())
    except batch.BatchUnavailable:
        return None
    return _tree_entries(found[2]) if found is not None and found[1] == "tree" else None


def entry_mode(path: Path, rev: str, file_path: str) -> str | None:
    """The mode of `file_path` in the tree of `rev` as git stores it (``100644`` a file, ``100755`` an
    executable, ``120000`` a link, ``40000`` a folder), or None when it is not there or cannot be read."""
    folder, _, name = file_path.rpartition("/")
    entries = _tree(path, f"{rev}:{folder}" if folder else f"{rev}^{{tree}}")
    return next((mode for mode, entry, _ in entries or () if entry == name), None)


def check_links(path: Path, rev: str) -> bool:
    """Check the links of `rev`'s files as :func:`export_tree` would (raises UnsafeEntry for the first one,
    in the archive's order: depth first), without writing the files out. False when it cannot tell (a folder
    or link that cannot be read, a name that is not plain, more than MAX_CHECKED_TREES folders): export."""
    root = _tree(path, f"{rev}^{{tree}}")
    if root is None:
        return False
    stack: list[tuple[str, Iterator[tuple[str, str, str]]]] = [("", iter(root))]
    trees = 1
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        mode, name, oid = entry
        if name in ("", ".", "..") or "/" in name:
            return False
        full = prefix + name
        if mode == "40000":
            trees += 1
            inner = _tree(path, oid)
            if inner is None or trees > MAX_CHECKED_TREES:
                return False
            stack.append((full + "/", iter(inner)))
        elif mode == "120000":
            try:
                found = batch.READERS.ask(path, oid, git_env())
            except batch.BatchUnavailable:
                return False
            if found is None or found[1] != "blob":
                return False
            target = found[2].decode("utf-8", "surrogateescape")
            if os.path.isabs(target):
                raise UnsafeEntry(full, "absolute link")
            if os.path.normpath(os.path.join(os.path.dirname(full), target)).split("/")[0] == "..":
                raise UnsafeEntry(full, "outside link")
    return True


def export_tree(path: Path, rev: str, dest: Path) -> None:
    """Write the files of `rev` into `dest` (no .git): what a pipeline's templates are read from.

    Raises mlyard.archives.UnsafeEntry for a link that is absolute or leads outside the tree, or a
    special file (the same checks on every Python).
    """
    import io
    import tarfile

    proc = run_git(["archive", "--format=tar", f"{rev}^{{tree}}"], cwd=path)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        safe_extract(tar, dest)


def commit_directory(path: Path, *, branch: str, source: Path, message: str, author: str = "mlyard") -> str:
    """Commit the files of `source` onto `branch` of the bare repo at `path` (locally, no HTTP).

    Used at init to seed platform repositories; returns the new commit sha.
    """
    import tempfile

    identity = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@mlyard.local",
                "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": f"{author}@mlyard.local"}
    with tempfile.TemporaryDirectory(prefix="mlyard-seed-") as tmp:
        env = git_env({**identity, "GIT_DIR": str(Path(tmp) / "git"), "GIT_WORK_TREE": str(source)})

        def git(*args: str) -> subprocess.CompletedProcess[bytes]:
            proc = subprocess.run(["git", *args], cwd=source, env=env, capture_output=True, timeout=GIT_TIMEOUT,
                                  check=False)
            if proc.returncode != 0:
                raise OperationFailed(f"git {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
            return proc

        git("init", "--quiet", f"--initial-branch={branch}")
        git("add", "--all", ".")
        git("commit", "--quiet", "-m", message)
        git("push", "--quiet", str(path), f"HEAD:refs/heads/{branch}")
        return git("rev-parse", "HEAD").stdout.decode().strip()
