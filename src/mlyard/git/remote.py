"""Git as a remote user: push a directory to a hosted repo over HTTP with a token.

The token travels in an `http.extraHeader` passed through the environment (never in argv or a
URL), so it does not show in process listings or in git's messages.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from pathlib import Path

from mlyard.errors import InvalidInput, OperationFailed
from mlyard.git.repos import GIT_TIMEOUT, git_env


def auth_env(username: str, token: str) -> dict[str, str]:
    basic = base64.b64encode(f"{username or 'mlyard'}:{token}".encode()).decode()
    return git_env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    )


def _git(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=GIT_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"git {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8", "replace")


def push_directory(
    url: str, *, username: str, token: str, source: Path, branch: str, message: str = "Initial commit",
    push_options: tuple[str, ...] = (),
) -> str:
    """Push `source` to `url`: its branches and tags if it is a git work tree, else one commit of its files.

    Returns a short description of what was pushed. `source` itself is never modified. `push_options` are
    passed as `git push -o OPTION` (mlyard's server reads `requested-for=USER`).
    """
    options = [arg for option in push_options for arg in ("-o", option)]
    if not source.is_dir():
        raise InvalidInput(f"--from-dir {source}: not a directory")
    env = auth_env(username, token)
    if (source / ".git").exists():
        _git(["push", "--quiet", *options, url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"], cwd=source,
             env=env)
        return "pushed the branches and tags of the git repository"
    with tempfile.TemporaryDirectory(prefix="mlyard-push-") as tmp:
        git_dir = Path(tmp) / "git"
        identity = {
            "GIT_AUTHOR_NAME": username or "mlyard",
            "GIT_AUTHOR_EMAIL": f"{username or 'mlyard'}@mlyard.local",
            "GIT_COMMITTER_NAME": username or "mlyard",
            "GIT_COMMITTER_EMAIL": f"{username or 'mlyard'}@mlyard.local",
        }
        local = {**env, **identity, "GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(source)}
        _git(["init", "--quiet", f"--initial-branch={branch}"], cwd=source, env=local)
        _git(["add", "--all", "."], cwd=source, env=local)
        _git(["commit", "--quiet", "--allow-empty", "-m", message], cwd=source, env=local)
        _git(["push", "--quiet", *options, url, f"HEAD:refs/heads/{branch}"], cwd=source, env=local)
    return f"pushed the files of {source} as one commit on {branch}"
