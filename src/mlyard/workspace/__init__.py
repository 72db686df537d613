"""Environment workspaces: where code CI/CD deploys a repository's code, under `ml_apps/<app>/<branch>`.

An environment's workspace is named by a URI (the `workspace_uri` of the environment and of its
service connection). `open_workspace` picks the implementation from the URI's scheme; today
`file://` (a local folder, :class:`LocalWorkspace`). A Databricks workspace would be a
`databricks://<host>/<folder>` implementation of the same :class:`Workspace` protocol, registered
in `_OPENERS`; callers never look past the URI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from mlyard.errors import InvalidInput
from mlyard.workspace.local import MANIFEST_FILE, LocalWorkspace
from mlyard.workspace.targets import APPS_DIR, check_app, check_branch, strip_branch_ref

__all__ = [
    "APPS_DIR",
    "MANIFEST_FILE",
    "LocalWorkspace",
    "Workspace",
    "check_app",
    "check_branch",
    "open_workspace",
    "strip_branch_ref",
]


class Workspace(Protocol):
    """What code CI/CD and the CLI need from a workspace, whatever hosts it."""

    @property
    def uri(self) -> str: ...

    def deploy(self, app: str, branch: str, source: Path, *, manifest: dict[str, Any]) -> dict[str, Any]: ...

    def show(self, app: str, branch: str) -> dict[str, Any]: ...

    def ls(self, path: str = "") -> list[dict[str, Any]]: ...

    def deployments(self, app: str | None = None) -> list[dict[str, Any]]: ...

    def remove(self, app: str, branch: str) -> dict[str, Any]: ...


def _open_file(uri: str) -> Workspace:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidInput(
            f"invalid workspace URI {uri!r}: a local workspace is file:///absolute/path (no host, absolute path)"
        )
    if parts.query or parts.fragment:
        raise InvalidInput(f"invalid workspace URI {uri!r}: a file:// URI takes no query or fragment")
    return LocalWorkspace(Path(unquote(parts.path)))


_OPENERS: dict[str, Callable[[str], Workspace]] = {"file": _open_file}


def open_workspace(uri: str) -> Workspace:
    """The workspace a URI names; an unsupported scheme is an InvalidInput naming the supported ones."""
    scheme = urlsplit(uri).scheme.lower() if "://" in (uri or "") else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        supported = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise InvalidInput(f"unsupported workspace URI {uri!r}: supported schemes: {supported}")
    return opener(uri)
