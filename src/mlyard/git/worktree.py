"""A work tree of a hosted repository, as a remote user: clone with a token, commit, push a branch.

Used by `mlyard projects update` on the user's machine. The token travels in an `http.extraHeader`
set through the environment (never in argv, a URL or the clone's config), as in `mlyard.git.remote`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlyard.errors import OperationFailed
from mlyard.git.remote import auth_env
from mlyard.git.repos import GIT_TIMEOUT

MAX_LISTED_PATHS = 5000  # paths a status or diff listing returns at most


class WorkTree:
    """A clone in `path`; every git command runs with the user's token and identity."""

    def __init__(self, path: Path, *, username: str, token: str) -> None:
        self.path = path
        name = username or "mlyard"
        self._env = {
            **auth_env(name, token),
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": f"{name}@mlyard.local",
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": f"{name}@mlyard.local",
        }

    @classmethod
    def clone(cls, url: str, path: Path, *, username: str, token: str, branch: str | None = None) -> WorkTree:
        """Clone `url` (its whole history: copier needs the template's old commits) into `path`."""
        tree = cls(path, username=username, token=token)
        path.parent.mkdir(parents=True, exist_ok=True)
        pick = ["--branch", branch] if branch else []
        tree._run(["clone", "--quiet", *pick, "--", url, str(path)], cwd=path.parent)
        return tree

    def git(self, *args: str, check: bool = True) -> str:
        """Run `git args` in the work tree; its standard output."""
        return self._run(list(args), cwd=self.path, check=check)

    def resolve(self, ref: str) -> str | None:
        """The commit `ref` names, or None when it names none (`ref` is never read as an option)."""
        if ref.startswith("-"):
            return None
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
        return out.strip() or None

    def has_remote_branch(self, branch: str) -> bool:
        return self.resolve(f"refs/remotes/origin/{branch}") is not None

    def unmerged_paths(self) -> list[str]:
        """Paths left in conflict in the index (what `git status` shows as `UU`)."""
        return self._paths("diff", "--name-only", "-z", "--diff-filter=U")

    def changed_paths(self, base: str) -> list[str]:
        """Paths the index changes against `base` (added, modified, deleted)."""
        return self._paths("diff", "--cached", "--name-only", "-z", "--no-renames", base, "--")

    def commit_all(self, message: str) -> str:
        """Stage every change (conflicted files as they are) and commit; the new commit's sha."""
        self.git("add", "--all", ".")
        self.git("commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def push_new_branch(self, branch: str) -> None:
        """Push HEAD as the new branch `branch`; refused if the branch appeared on the server meanwhile."""
        ref = f"refs/heads/{branch}"
        self.git("push", "--quiet", f"--force-with-lease={ref}:", "origin", f"HEAD:{ref}")

    def _paths(self, *args: str) -> list[str]:
        return [p for p in self.git(*args).split("\0") if p][:MAX_LISTED_PATHS]

    def _run(self, args: list[str], *, cwd: Path, check: bool = True) -> str:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, env=self._env, capture_output=True, timeout=GIT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise OperationFailed(f"git {args[0]} timed out after {GIT_TIMEOUT} s in {cwd}") from exc
        if check and proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
            raise OperationFailed(f"git {args[0]} failed: {detail}")
        return proc.stdout.decode("utf-8", "surrogateescape")
