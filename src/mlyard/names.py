"""Name rules, checked before a name touches a path, a URL or the database."""

from __future__ import annotations

import re

from mlyard.errors import InvalidInput

_REPO_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
REPO_RULE = (
    "names use lower-case letters, digits, '.', '_' and '-', start with a letter or digit, "
    "have at most 63 characters, do not end in '.git' and do not contain '..'"
)
_USER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,38}$")
USER_RULE = (
    "user names use lower-case letters, digits, '.', '_' and '-', start with a letter or digit, at most 39 characters"
)
_ENV_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
ENV_RULE = "environment names use lower-case letters, digits and '-', start with a letter, at most 32 characters"
_BRANCH_BAD = re.compile(r"(^[./-])|(\.\.)|([\x00-\x20~^:?*\[\\\x7f])|(@\{)|(/\.)|(//)|(\.lock$)|([./]$)")


def check_repo_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise InvalidInput stating the rule."""
    if not isinstance(name, str) or not _REPO_RE.match(name) or name.endswith(".git") or ".." in name:
        raise InvalidInput(f"invalid repository name {name!r}: {REPO_RULE}")
    return name


def check_username(name: str) -> str:
    if not isinstance(name, str) or not _USER_RE.match(name):
        raise InvalidInput(f"invalid user name {name!r}: {USER_RULE}")
    return name


def check_env_name(name: str) -> str:
    if not isinstance(name, str) or not _ENV_RE.match(name):
        raise InvalidInput(f"invalid environment name {name!r}: {ENV_RULE}")
    return name


def check_branch_name(name: str) -> str:
    """Git's ref-name rules (git check-ref-format) for a branch name without refs/heads/."""
    if not name or len(name) > 255 or _BRANCH_BAD.search(name) or name == "@":
        raise InvalidInput(
            f"invalid branch name {name!r}: branch names follow git's rules "
            "(no spaces, '..', '~', '^', ':', '?', '*', '[', '\\', no leading '-' or '.', no trailing '/' or '.lock')"
        )
    return name
