"""Where a deploy lands: app and branch names checked before they touch a path.

A deployed branch lives at ``ml_apps/<app>/<branch>`` (the full branch name, so ``feature/x`` is a
folder ``feature`` holding ``x``). Its versions live under ``ml_apps/<app>/.versions/<slug>/``: a
branch name may be long and contain ``/``, so the slug is a short, flat, injective form of it. No
git branch name has a component starting with ``.``, so ``.versions`` never collides with a branch.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from mlyard.errors import InvalidInput
from mlyard.names import check_branch_name, check_repo_name

APPS_DIR = "ml_apps"
VERSIONS_DIR = ".versions"
BRANCH_PREFIX = "refs/heads/"
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_app(app: str) -> str:
    """An app is named like the repository it comes from."""
    return check_repo_name(app)


def check_branch(branch: str) -> str:
    """A full branch name (without refs/heads/) that stays below its app folder."""
    if not isinstance(branch, str) or not branch:
        raise InvalidInput("invalid branch name '': a branch name is required")
    if branch.startswith("/"):
        raise InvalidInput(f"invalid branch name {branch!r}: a branch name must not start with '/'")
    if ".." in branch.split("/"):
        raise InvalidInput(f"invalid branch name {branch!r}: '..' segments would escape the workspace")
    return check_branch_name(branch)


def strip_branch_ref(branch: str) -> str:
    """`refs/heads/feature/x` -> `feature/x` (what Build.SourceBranch holds); other names unchanged."""
    return branch[len(BRANCH_PREFIX) :] if branch.startswith(BRANCH_PREFIX) else branch


def branch_slug(branch: str) -> str:
    """A flat folder name for a branch: readable prefix plus a hash, so distinct branches never share one."""
    readable = _SLUG_UNSAFE.sub("-", branch)[:60].strip("-.") or "branch"
    digest = hashlib.sha256(branch.encode()).hexdigest()[:12]
    return f"{readable}-{digest}"


def relative_path(path: str) -> PurePosixPath:
    """A path below the workspace root as given to `ls`: relative, without '..' segments."""
    cleaned = (path or "").replace("\\", "/").strip()
    if cleaned.startswith("/"):
        raise InvalidInput(f"invalid workspace path {path!r}: paths are relative to the workspace root")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"invalid workspace path {path!r}: '..' segments would escape the workspace")
    return PurePosixPath(*parts)
