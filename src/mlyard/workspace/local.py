"""A workspace that is a local folder (the stand-in for a Databricks workspace).

Layout below the root::

    ml_apps/<app>/<branch>                 symlink -> .versions/<slug>/<version> (relative)
    ml_apps/<app>/.versions/<slug>/<version>/   the deployed files + .mlyard-deploy.json
    ml_apps/<app>/.versions/<slug>.lock    serialises deploys of one branch (fcntl.flock)
    ml_apps/<app>/.versions/.app.lock      held while branch links are created, switched or removed

A deploy copies into a new version folder, then switches the branch link with one rename
(`os.replace` of a temporary link), so a reader sees the old files or the new ones, never a mix.
Replaced versions stay for `grace_seconds` (the time a version was switched out is the modified
time of the version that replaced it), so a reader that resolved the old path can finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mlyard.errors import Conflict, InvalidInput, NotFound, OperationFailed
from mlyard.workspace.copying import copy_tree
from mlyard.workspace.targets import APPS_DIR, VERSIONS_DIR, branch_slug, check_app, check_branch, relative_path

MANIFEST_FILE = ".mlyard-deploy.json"
DEFAULT_GRACE_SECONDS = 60.0


class LocalWorkspace:
    """A workspace rooted at a local folder (created on the first deploy)."""

    def __init__(self, root: Path, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.root = Path(root).expanduser().resolve()
        self.grace_seconds = grace_seconds

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalWorkspace({str(self.root)!r})"

    # -- deploy -----------------------------------------------------------------------------------

    def deploy(self, app: str, branch: str, source: Path, *, manifest: dict[str, Any]) -> dict[str, Any]:
        """Copy `source` to `ml_apps/<app>/<branch>` atomically; return the manifest plus `path`."""
        check_app(app)
        check_branch(branch)
        source = _check_source(source)
        if self.root.resolve().is_relative_to(source.resolve()):
            raise InvalidInput(f"the source folder {source} contains the workspace {self.root}: "
                               "deploy from a folder outside the workspace")
        app_dir = self._app_dir(app, create=True)
        versions = app_dir / VERSIONS_DIR / branch_slug(branch)
        versions.parent.mkdir(exist_ok=True)
        with _locked(app_dir / VERSIONS_DIR / f"{branch_slug(branch)}.lock"):
            versions.mkdir(exist_ok=True)
            version = versions / _new_version_name()
            version.mkdir()
            try:
                try:
                    copied = copy_tree(source, version)
                except OSError as exc:
                    raise OperationFailed(f"copying {source} into the workspace failed: {exc}") from exc
                document = _manifest(app, branch, manifest, copied.files, copied.bytes, copied.warnings, version)
                _write_json(version / MANIFEST_FILE, document)
                with _locked(app_dir / VERSIONS_DIR / ".app.lock"):
                    link = self._branch_link(app_dir, app, branch, create=True)
                    _switch(link, version)
            except BaseException:
                shutil.rmtree(version, ignore_errors=True)
                raise
            os.utime(version)  # the switch time: when the previous version was retired
            self._prune(versions, keep=version.name)
        return {**document, "path": str(link), "uri": link.as_uri(), "warnings": copied.warnings}

    # -- read -------------------------------------------------------------------------------------

    def show(self, app: str, branch: str) -> dict[str, Any]:
        """The manifest of a deployed branch, its path and its files (relative paths and sizes)."""
        check_app(app)
        check_branch(branch)
        link = self._deployed_link(app, branch)
        version = Path(os.path.realpath(link))
        document = _read_manifest(version)
        return {**document, "path": str(link), "uri": link.as_uri(), "files": _files(version)}

    def ls(self, path: str = "") -> list[dict[str, Any]]:
        """Entries of a folder below the root: name, type (dir, file, app, branch), size, modified."""
        rel = relative_path(path)
        target = self.root / rel
        if not rel.parts and not target.exists():
            return []
        resolved = Path(os.path.realpath(target))
        if not resolved.is_relative_to(self.root):
            raise InvalidInput(f"invalid workspace path {path!r}: it leads out of the workspace")
        if not resolved.exists():
            raise NotFound(f"no such path {rel.as_posix()!r} in workspace {self.uri}")
        if not resolved.is_dir():
            return [_entry(target, "file")]
        inside_app = len(rel.parts) >= 2 and rel.parts[0] == APPS_DIR and not _under_branch(self.root, rel)
        entries = []
        for child in sorted(target.iterdir()):
            if inside_app and child.name.startswith("."):
                continue
            entries.append(_entry(child, self._kind(rel, child, inside_app)))
        return entries

    def deployments(self, app: str | None = None) -> list[dict[str, Any]]:
        """Every deployed branch (of one app or all): app, branch, commit, run, deployed_at/by, files, bytes."""
        apps_dir = self.root / APPS_DIR
        if app is not None:
            check_app(app)
        names = [app] if app is not None else sorted(p.name for p in _dirs(apps_dir))
        rows = []
        for name in names:
            app_dir = apps_dir / name
            for link in _branch_links(app_dir):
                document = _read_manifest(Path(os.path.realpath(link)))
                rows.append({**document, "app": name, "branch": link.relative_to(app_dir).as_posix()})
        return rows

    # -- remove -----------------------------------------------------------------------------------

    def remove(self, app: str, branch: str) -> dict[str, Any]:
        """Remove a deployed branch: its link goes in one step, then its versions and empty folders."""
        check_app(app)
        check_branch(branch)
        link = self._deployed_link(app, branch)
        app_dir = self.root / APPS_DIR / app
        document = _read_manifest(Path(os.path.realpath(link)))
        with _locked(app_dir / VERSIONS_DIR / f"{branch_slug(branch)}.lock"):
            with _locked(app_dir / VERSIONS_DIR / ".app.lock"):
                link.unlink()
                _remove_empty_parents(link.parent, app_dir)
            shutil.rmtree(app_dir / VERSIONS_DIR / branch_slug(branch), ignore_errors=True)
        return {**document, "path": str(link), "removed": True}

    # -- internals --------------------------------------------------------------------------------

    def _app_dir(self, app: str, *, create: bool) -> Path:
        """`ml_apps/<app>`, each level a real folder (never a link out of the workspace)."""
        current = self.root
        for part in (APPS_DIR, app):
            current = current / part
            if current.is_symlink():
                raise self._refuse_link(current)
            if create:
                current.mkdir(parents=True, exist_ok=True)
            if current.exists() and not current.is_dir():
                raise Conflict(f"{current.relative_to(self.root).as_posix()!r} in workspace {self.uri} is not a folder")
        return current

    def _branch_link(self, app_dir: Path, app: str, branch: str, *, create: bool) -> Path:
        """The link path of a branch; its parent folders are real folders inside the app folder."""
        parts = branch.split("/")
        current = app_dir
        for index, part in enumerate(parts[:-1]):
            current = current / part
            prefix = "/".join(parts[: index + 1])
            if current.is_symlink() and _is_branch_link(current, app_dir):
                raise Conflict(
                    f"branch {branch!r} of app {app!r} conflicts with the deployed branch {prefix!r}: "
                    f"remove {prefix!r} first"
                )
            if current.is_symlink():
                raise self._refuse_link(current)
            if create:
                current.mkdir(exist_ok=True)
        link = app_dir.joinpath(*parts)
        if link.is_symlink() and not _is_branch_link(link, app_dir):
            raise self._refuse_link(link)
        if link.exists() and not link.is_symlink():
            raise Conflict(
                f"branch {branch!r} of app {app!r} conflicts with the deployed branches under '{branch}/': "
                "remove them first"
            )
        if not Path(os.path.realpath(link.parent)).is_relative_to(self.root / APPS_DIR):
            raise InvalidInput(f"invalid branch name {branch!r}: it leads out of the workspace")
        return link

    def _deployed_link(self, app: str, branch: str) -> Path:
        app_dir = self._app_dir(app, create=False)
        link = app_dir.joinpath(*branch.split("/"))
        if not _is_branch_link(link, app_dir):
            deployed = ", ".join(link.relative_to(app_dir).as_posix() for link in _branch_links(app_dir))
            raise NotFound(
                f"branch {branch!r} of app {app!r} is not deployed in workspace {self.uri}"
                + (f"; deployed branches: {deployed}" if deployed else "")
            )
        return link

    def _refuse_link(self, path: Path) -> InvalidInput:
        return InvalidInput(
            f"refusing {path.relative_to(self.root).as_posix()!r} in workspace {self.uri}: "
            "it is a symbolic link, which could lead out of the workspace"
        )

    def _prune(self, versions: Path, *, keep: str) -> None:
        """Remove versions switched out more than grace_seconds ago (never the current one)."""
        names = sorted(p.name for p in versions.iterdir() if p.is_dir())
        now = time.time()
        for older, newer in zip(names, [*names[1:], None], strict=True):
            if older == keep:
                continue
            replaced_at = (versions / (newer or older)).stat().st_mtime
            if now - replaced_at >= self.grace_seconds:
                shutil.rmtree(versions / older, ignore_errors=True)

    def _kind(self, rel: PurePosixPath, child: Path, inside_app: bool) -> str:
        if child.is_symlink() and inside_app:
            return "branch"
        if rel.parts == (APPS_DIR,) and child.is_dir():
            return "app"
        return "dir" if child.is_dir() else "file"


def _check_source(source: Path) -> Path:
    source = Path(source)
    if not source.exists():
        raise NotFound(f"source folder {str(source)!r} does not exist")
    if not source.is_dir():
        raise InvalidInput(f"source {str(source)!r} is not a folder")
    return source.resolve()


def _new_version_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:8]


def _manifest(
    app: str, branch: str, given: dict[str, Any], files: int, size: int, warnings: list[str], version: Path
) -> dict[str, Any]:
    return {
        **given,
        "app": app,
        "branch": branch,
        "commit": given.get("commit"),
        "run": given.get("run") or {"id": None, "url": None},
        "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "deployed_by": given.get("deployed_by"),
        "environment": given.get("environment"),
        "files": files,
        "bytes": size,
        "version": version.name,
        "skipped": warnings,
    }


def _switch(link: Path, version: Path) -> None:
    """Point `link` at `version` in one rename: readers see the old target or the new one."""
    temp = link.parent / f".{link.name}.{uuid.uuid4().hex[:8]}.tmp"
    os.symlink(os.path.relpath(version, link.parent), temp)
    try:
        os.replace(temp, link)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OperationFailed(f"could not switch {link} to the new version: {exc.strerror}") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_manifest(version: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((version / MANIFEST_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]


def _is_branch_link(path: Path, app_dir: Path) -> bool:
    """A link this workspace made: it resolves to an existing version folder of the app."""
    if not path.is_symlink():
        return False
    target = Path(os.path.realpath(path))
    return target.is_dir() and target.parent.parent == app_dir / VERSIONS_DIR


def _branch_links(app_dir: Path, app_dir_root: Path | None = None) -> list[Path]:
    """Branch links below an app folder, depth first, skipping the hidden version store."""
    found: list[Path] = []
    if not app_dir.is_dir() or app_dir.is_symlink():
        return found
    for child in sorted(app_dir.iterdir()):
        if child.name.startswith("."):
            continue
        if _is_branch_link(child, app_dir_root or app_dir):
            found.append(child)
        elif child.is_dir() and not child.is_symlink():
            found.extend(_branch_links(child, app_dir_root or app_dir))
    return found


def _under_branch(root: Path, rel: PurePosixPath) -> bool:
    """Whether `rel` (ml_apps/<app>/...) goes through a branch link (then it lists deployed files)."""
    current = root / rel.parts[0] / rel.parts[1]
    for part in rel.parts[2:]:
        current = current / part
        if current.is_symlink():
            return True
    return False


def _files(version: Path) -> list[dict[str, Any]]:
    """The deployed files of a version (links with their target), without the manifest."""
    files = []
    for path in sorted(version.rglob("*")):
        if (path.is_dir() and not path.is_symlink()) or path == version / MANIFEST_FILE:
            continue
        item: dict[str, Any] = {"path": path.relative_to(version).as_posix(), "size": path.lstat().st_size}
        if path.is_symlink():
            item["link_to"] = os.readlink(path)
        files.append(item)
    return files


def _entry(path: Path, kind: str) -> dict[str, Any]:
    info = path.stat() if path.exists() else path.lstat()
    return {
        "name": path.name,
        "type": kind,
        "size": info.st_size if kind == "file" else None,
        "modified": datetime.fromtimestamp(info.st_mtime, UTC).isoformat(timespec="seconds"),
    }


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
