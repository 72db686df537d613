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


_PIPELINE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESOURCE_RULE = "names use letters, digits, '.', '_' and '-', start with a letter or digit, at most 128 characters"
PIPELINE_RULE = "pipeline " + RESOURCE_RULE
_FOLDER_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
_RESOURCE_RE = _PIPELINE_RE
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9._]{0,127}$")


def check_pipeline_name(name: str) -> str:
    if not isinstance(name, str) or not _PIPELINE_RE.match(name):
        raise InvalidInput(f"invalid pipeline name {name!r}: {PIPELINE_RULE}")
    return name


def check_folder(folder: str) -> str:
    """A pipeline folder like `a/b` (empty = the root); each part a plain name."""
    cleaned = folder.strip().strip("/\\").replace("\\", "/")
    if cleaned and not all(_FOLDER_PART_RE.match(part) for part in cleaned.split("/")):
        raise InvalidInput(
            f"invalid folder {folder!r}: folders are names separated by '/', each of letters, digits, "
            "'.', '_', '-' and spaces, starting with a letter or digit"
        )
    return cleaned


def check_resource_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _RESOURCE_RE.match(name):
        raise InvalidInput(f"invalid {what} name {name!r}: {RESOURCE_RULE}")
    return name


def check_variable_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not _VARIABLE_RE.match(name)
        or name.lower().startswith(("system.", "build.", "agent."))
    ):
        raise InvalidInput(
            f"invalid variable name {name!r}: variable names use letters, digits, '.' and '_', "
            "start with a letter or '_', and do not start with System., Build. or Agent."
        )
    return name
