"""Workspace objects as Databricks' Workspace API sees them, over a local workspace folder.

Databricks has three kinds of object: DIRECTORY, FILE and NOTEBOOK. On disk a notebook is its source
file, with the extension of its language and Databricks' header as first line (``# Databricks notebook
source`` for Python), exactly what a Databricks Git folder holds: ``train.py`` starting with the header is
the notebook ``train``, any other file is a FILE under its full name. So a deploy by ``mlyard workspace
deploy`` (a copy of ``src/``) and a deploy through the Workspace API give the same tree.

Paths are absolute workspace paths (``/ml_apps/demo/master/src``; a ``/Workspace`` prefix is accepted
and dropped). They never leave the root: ``..`` is refused, and a path whose real location (through the
branch links of deployed code) is outside the root is refused. The version store ``.versions`` of
deployed code is hidden. Imports, exports and archives are bounded (the ``MAX_*`` constants).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.workspace.local import LocalWorkspace
from mlyard.workspace.targets import APPS_DIR, VERSIONS_DIR, check_app, check_branch

DIRECTORY, FILE, NOTEBOOK = "DIRECTORY", "FILE", "NOTEBOOK"
# language -> (extension on disk, first line of its source format)
LANGUAGES = {
    "PYTHON": ("py", "# Databricks notebook source"),
    "SQL": ("sql", "-- Databricks notebook source"),
    "SCALA": ("scala", "// Databricks notebook source"),
    "R": ("r", "# Databricks notebook source"),
}
_BY_EXTENSION = {ext: language for language, (ext, _header) in LANGUAGES.items()}
IMPORT_FORMATS = ("SOURCE", "AUTO", "RAW")
UNSUPPORTED_FORMATS = ("DBC", "HTML", "JUPYTER", "R_MARKDOWN")
MAX_OBJECT_BYTES = 10 * 1024**2  # one imported or exported object (Databricks' own limit is 10 MB)
MAX_ARCHIVE_BYTES = 100 * 1024**2  # the files of one directory import or export, uncompressed
MAX_ARCHIVE_ENTRIES = 10_000  # entries of one directory import or export
MAX_LIST_ENTRIES = 10_000  # objects one `list` returns
MAX_PATH_CHARS = 4096
_ZIP_MAGIC = b"PK\x03\x04"
# A deployed folder may say what it was built from (the template's mlops/deploy_code.py writes it): its
# commit and run link go into the deploy's manifest, as `mlyard workspace deploy` records them.
DEPLOY_INFO = ".deploy.json"
MAX_DEPLOY_INFO_BYTES = 16 * 1024
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_BUILD_ID = re.compile(r"[?&]buildId=(\d{1,18})(?:&|$)")


class DirectoryNotEmpty(InvalidInput):
    """`delete` of a folder that holds objects, without `recursive`."""


class TooLarge(InvalidInput):
    """An object or archive past its MAX_* bound."""


@dataclass(frozen=True)
class ObjectInfo:
    """One workspace object; `disk` is where it lives (the API never shows it)."""

    path: str
    object_type: str
    language: str | None
    object_id: int
    size: int | None
    created_at: int
    modified_at: int
    disk: Path


@dataclass(frozen=True)
class Exported:
    content: bytes
    file_type: str  # py, sql, zip, ... ("" for a file without extension)


def notebook_language(name: str, content: bytes) -> str | None:
    """The language of a notebook source file (extension + header line), None when it is a plain file."""
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    language = _BY_EXTENSION.get(ext)
    if language is None:
        return None
    first = content.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").strip()
    return language if first == LANGUAGES[language][1] else None


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(64)
    except OSError:
        return b""


class WorkspaceObjects:
    """The objects below a local workspace root (created on the first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    # -- read ---------------------------------------------------------------------------------------

    def get_status(self, path: str) -> ObjectInfo:
        found = self._find(self._parts(path))
        if found is None:
            raise NotFound(f"Path ({_show(path)}) doesn't exist.")
        return found

    def list(self, path: str) -> list[ObjectInfo]:
        parts = self._parts(path)
        found = self.get_status(path)
        if found.object_type != DIRECTORY:
            return [found]
        items: list[ObjectInfo] = []
        for child in sorted(found.disk.iterdir()) if found.disk.is_dir() else []:
            info = self._describe((*parts, child.name), child)
            if info is not None:
                items.append(info)
            if len(items) > MAX_LIST_ENTRIES:
                raise TooLarge(f"folder {_show(path)} holds more than {MAX_LIST_ENTRIES} objects: list a sub-folder")
        return items

    def export(self, path: str, fmt: str = "SOURCE") -> Exported:
        fmt = _check_format(fmt or "SOURCE", export=True)
        found = self.get_status(path)
        if found.object_type == DIRECTORY:
            if fmt == "RAW":
                raise InvalidInput(f"format RAW cannot export the folder {found.path}: use SOURCE or AUTO (a zip)")
            return Exported(self._zip(found, notebooks_only=fmt == "SOURCE"), "zip")
        if found.disk.stat().st_size > MAX_OBJECT_BYTES:
            raise TooLarge(f"{found.path} is larger than {MAX_OBJECT_BYTES} bytes, the most one export returns")
        ext = found.disk.name.rpartition(".")[2] if "." in found.disk.name else ""
        return Exported(found.disk.read_bytes(), ext)

    # -- write --------------------------------------------------------------------------------------

    def mkdirs(self, path: str) -> None:
        current = self.root
        self.root.mkdir(parents=True, exist_ok=True)
        parts = self._parts(path)
        for index, part in enumerate(parts):
            found = self._find(parts[: index + 1])
            if found is not None and found.object_type != DIRECTORY:
                raise Conflict(f"Path ({found.path}) already exists as a {found.object_type.lower()}: "
                               "it cannot become a folder")  # fmt: skip
            if found is None and (current / part).is_symlink():  # a link leading out of the workspace
                where = _join(parts[: index + 1])
                raise InvalidInput(f"invalid path '{_show(path)}': {where} leads out of the workspace")
            current = found.disk if found is not None else current / part
            current.mkdir(exist_ok=True)

    def import_object(
        self, path: str, content: bytes, *, fmt: str = "SOURCE", language: str | None = None, overwrite: bool = False,
        manifest: dict[str, Any] | None = None,
    ) -> ObjectInfo:  # fmt: skip
        """Import one object (or a folder, from a zip in SOURCE/AUTO format); returns what was created.

        A folder imported at `/ml_apps/<app>/<branch>` is a deploy of that branch, with `manifest`: a new
        version switched in atomically, as `mlyard workspace deploy` does (docs/workspace.md)."""
        fmt = _check_format(fmt or "SOURCE", export=False)
        parts = self._parts(path)
        if not parts:
            raise InvalidInput("cannot import onto the workspace root '/': give the path of the new object")
        if language is not None and language not in LANGUAGES:
            raise InvalidInput(f"unknown language {language!r}: one of {', '.join(LANGUAGES)}")
        if fmt != "RAW" and language is None and content.startswith(_ZIP_MAGIC):
            return self._import_folder(parts, content, overwrite=overwrite, manifest=manifest)
        if len(content) > MAX_OBJECT_BYTES:
            raise TooLarge(f"the content of {_show(path)} has {len(content)} bytes; at most {MAX_OBJECT_BYTES} "
                           "can be imported at once")  # fmt: skip
        name, data = parts[-1], content
        if fmt == "AUTO":
            detected = notebook_language(name, content)
            if detected is not None:
                name = name.rpartition(".")[0]
                language = detected
            elif "." not in name and _header_language(content):  # no extension: the header decides
                language = language or _header_language(content)
            else:
                language = None
        elif fmt == "SOURCE":
            language = language or _header_language(content)
            if language is None:
                raise InvalidInput(f"importing {_show(path)} in SOURCE format needs a language (PYTHON, SQL, "
                                   "SCALA or R), or use format AUTO (a notebook is recognised by its header)")
            header = LANGUAGES[language][1].encode()
            if not content.startswith(header):
                data = header + b"\n" + content
        else:
            language = None
        if not name:
            raise InvalidInput(f"invalid path '{_show(path)}': the object needs a name")
        target = (*parts[:-1], name)
        folder = self._parent(target)
        disk_name = f"{name}.{LANGUAGES[language][0]}" if language else name
        self._make_room(target, folder / disk_name, overwrite=overwrite)
        _write(folder / disk_name, data)
        info = self._describe((*parts[:-1], disk_name), folder / disk_name)
        assert info is not None
        return info

    def delete(self, path: str, *, recursive: bool = False) -> None:
        parts = self._parts(path)
        if not parts:
            raise InvalidInput("the workspace root '/' cannot be deleted")
        found = self.get_status(path)
        disk = found.disk
        if found.object_type != DIRECTORY:
            disk.unlink()
            return
        if not recursive and any(self._describe((*parts, c.name), c) for c in _children(disk)):
            raise DirectoryNotEmpty(f"Folder ({found.path}) is not empty: delete it with recursive=true")
        self._remove_folder(parts, disk)

    # -- internals ----------------------------------------------------------------------------------

    def _parts(self, path: str) -> tuple[str, ...]:
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidInput(f"invalid path '{_show(path)}': a workspace path is absolute (starts with '/')")
        if len(path) > MAX_PATH_CHARS or "\x00" in path:
            raise InvalidInput(f"invalid path: at most {MAX_PATH_CHARS} characters, no NUL")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if parts[:1] == ["Workspace"]:
            parts = parts[1:]
        if ".." in parts:
            raise InvalidInput(f"invalid path '{_show(path)}': '..' segments are not allowed")
        if VERSIONS_DIR in parts:
            raise NotFound(f"Path ({_show(path)}) doesn't exist.")
        return tuple(parts)

    def _inside(self, disk: Path) -> bool:
        return Path(os.path.realpath(disk)).is_relative_to(self.root)

    def _find(self, parts: tuple[str, ...]) -> ObjectInfo | None:
        """The object at a workspace path: a folder or file of that name, else a notebook `<name>.<ext>`."""
        if not parts:
            return ObjectInfo("/", DIRECTORY, None, 0, None, 0, 0, self.root)
        folder = self.root.joinpath(*parts[:-1])
        exact = folder / parts[-1]
        if exact.exists() and self._inside(exact):
            return self._describe(parts, exact, exact_only=True)
        for ext in _BY_EXTENSION:
            candidate = folder / f"{parts[-1]}.{ext}"
            if candidate.is_file() and self._inside(candidate):
                info = self._describe((*parts[:-1], candidate.name), candidate)
                if info is not None and info.object_type == NOTEBOOK:
                    return info
        return None

    def _describe(self, parts: tuple[str, ...], disk: Path, *, exact_only: bool = False) -> ObjectInfo | None:
        """What `disk` is in the workspace (None: hidden, special or outside the root)."""
        name = parts[-1]
        if name == VERSIONS_DIR or (name.startswith(".") and name.endswith((".tmp", ".lock"))):
            return None
        if not disk.exists() or not self._inside(disk):
            return None
        stat = disk.stat()
        common = {"object_id": stat.st_ino, "created_at": int(stat.st_ctime * 1000),
                  "modified_at": int(stat.st_mtime * 1000), "disk": disk}  # fmt: skip
        if disk.is_dir():
            return ObjectInfo(_join(parts), DIRECTORY, None, size=None, **common)  # type: ignore[arg-type]
        if not disk.is_file():
            return None
        language = notebook_language(name, _head(disk))
        if language is not None:
            if exact_only:
                return None  # `/a/train.py` when `train.py` is the notebook `/a/train`
            notebook = (*parts[:-1], name.rpartition(".")[0])
            return ObjectInfo(_join(notebook), NOTEBOOK, language, size=None, **common)  # type: ignore[arg-type]
        return ObjectInfo(_join(parts), FILE, None, size=stat.st_size, **common)  # type: ignore[arg-type]

    def _parent(self, parts: tuple[str, ...]) -> Path:
        parent = self._find(parts[:-1])
        if parent is None or parent.object_type != DIRECTORY:
            raise NotFound(f"The parent folder ({_join(parts[:-1])}) does not exist.")
        self.root.mkdir(parents=True, exist_ok=True)
        return parent.disk

    def _make_room(self, parts: tuple[str, ...], disk: Path, *, overwrite: bool) -> None:
        """Refuse (or, with overwrite, remove) whatever holds the object's name or its file on disk."""
        taken = [info for info in (self._find(parts), self._describe((*parts[:-1], disk.name), disk)) if info]
        if not taken and not disk.exists():
            return
        shown = taken[0].path if taken else _join(parts)
        if not overwrite:
            raise Conflict(f"Path ({shown}) already exists. Import with overwrite=true to replace it.")
        for info in taken:
            if info.object_type == DIRECTORY:
                raise Conflict(f"Path ({info.path}) is a folder: overwrite replaces notebooks and files only")
        for info in taken:
            info.disk.unlink(missing_ok=True)

    def _import_folder(
        self, parts: tuple[str, ...], archive: bytes, *, overwrite: bool, manifest: dict[str, Any] | None
    ) -> ObjectInfo:
        if len(archive) > MAX_ARCHIVE_BYTES:
            raise TooLarge(f"the archive for {_join(parts)} has more than {MAX_ARCHIVE_BYTES} bytes")
        try:
            bundle = zipfile.ZipFile(io.BytesIO(archive))
            entries = [e for e in bundle.infolist() if not e.is_dir()]
        except (zipfile.BadZipFile, ValueError) as exc:
            raise InvalidInput(f"the content for {_join(parts)} is not a valid zip archive: {exc}") from None
        names = [_entry_parts(e.filename) for e in entries]
        if len(entries) > MAX_ARCHIVE_ENTRIES or sum(e.file_size for e in entries) > MAX_ARCHIVE_BYTES:
            raise TooLarge(f"the archive for {_join(parts)} has more than {MAX_ARCHIVE_ENTRIES} files or "
                           f"{MAX_ARCHIVE_BYTES} bytes uncompressed")  # fmt: skip
        tops = {n[0] for n in names if len(n) > 1}
        if len(tops) == 1 and all(len(n) > 1 for n in names) and tops == {parts[-1]}:
            names = [n[1:] for n in names]  # the archive holds the folder itself (as `export` writes it)
        folder = self._parent(parts)
        existing = self._find(parts)
        if existing is not None and not overwrite:
            raise Conflict(f"Path ({existing.path}) already exists. Import with overwrite=true to replace it.")
        if existing is not None and existing.object_type != DIRECTORY:
            raise Conflict(f"Path ({existing.path}) is a {existing.object_type.lower()}, not a folder")
        staging = self.root / f".import-{uuid.uuid4().hex[:12]}.tmp"
        try:
            for entry, rel in zip(entries, names, strict=True):
                target = staging.joinpath(*rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(entry) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
            staging.mkdir(exist_ok=True)
            branch = _deployed_branch(parts)
            if existing is not None and (branch is None or not existing.disk.is_symlink()):
                self._remove_folder(parts, existing.disk)
            if branch is not None:
                stated = {k: v for k, v in (manifest or {}).items() if v is not None}
                given = {**deploy_info(staging / DEPLOY_INFO), **stated}
                LocalWorkspace(self.root).deploy(*branch, staging, manifest=given)
            else:
                os.replace(staging, folder / parts[-1])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        info = self._find(parts)
        assert info is not None
        return info

    def _remove_folder(self, parts: tuple[str, ...], disk: Path) -> None:
        """Remove a folder; deployed branches inside it are removed as `mlyard workspace` would (with
        their versions), a branch link itself is unlinked, never followed."""
        if len(parts) >= 2 and parts[0] == APPS_DIR:
            local = LocalWorkspace(self.root)
            prefix = "/".join(parts[2:])
            for row in local.deployments(parts[1]):
                branch = str(row["branch"])
                if not prefix or branch == prefix or branch.startswith(prefix + "/"):
                    local.remove(parts[1], branch)
        if disk.is_symlink():
            disk.unlink()
        elif disk.exists():
            shutil.rmtree(disk)

    def _zip(self, folder: ObjectInfo, *, notebooks_only: bool) -> bytes:
        buffer = io.BytesIO()
        total = count = 0
        top = folder.path.rstrip("/").rpartition("/")[2] or "workspace"
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for info, rel in self._walk(folder, ()):
                if notebooks_only and info.object_type != NOTEBOOK:
                    continue
                count += 1
                total += info.disk.stat().st_size
                if count > MAX_ARCHIVE_ENTRIES or total > MAX_ARCHIVE_BYTES:
                    raise TooLarge(f"the folder {folder.path} has more than {MAX_ARCHIVE_ENTRIES} objects or "
                                   f"{MAX_ARCHIVE_BYTES} bytes: export a sub-folder")  # fmt: skip
                bundle.write(info.disk, "/".join((top, *rel)))
        return buffer.getvalue()

    def _walk(
        self, folder: ObjectInfo, rel: tuple[str, ...], depth: int = 0
    ) -> Iterator[tuple[ObjectInfo, tuple[str, ...]]]:
        if depth > 64:
            raise TooLarge(f"{folder.path} is nested more than 64 folders deep")
        base = tuple(p for p in folder.path.split("/") if p)
        for child in _children(folder.disk):
            info = self._describe((*base, child.name), child)
            if info is None:
                continue
            if info.object_type == DIRECTORY:
                yield from self._walk(info, (*rel, child.name), depth + 1)
            else:
                yield info, (*rel, child.name)


def _deployed_branch(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(app, branch) when `parts` names a branch of deployed code, `ml_apps/<app>/<branch...>`."""
    if len(parts) < 3 or parts[0] != APPS_DIR:
        return None
    try:
        return check_app(parts[1]), check_branch("/".join(parts[2:]))
    except InvalidInput:
        return None


def _check_format(fmt: str, *, export: bool) -> str:
    fmt = str(fmt).upper()
    if fmt in UNSUPPORTED_FORMATS:
        action = "export" if export else "import"
        raise InvalidInput(f"format {fmt} is not supported by mlyard's workspace: {action} SOURCE, AUTO or RAW "
                           "(a folder travels as a zip in SOURCE or AUTO format)")  # fmt: skip
    if fmt not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: one of {', '.join(IMPORT_FORMATS + UNSUPPORTED_FORMATS)}")
    return fmt


def _header_language(content: bytes) -> str | None:
    first = content.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").strip()
    return next((language for language, (_e, header) in LANGUAGES.items() if header == first), None)


def _entry_parts(name: str) -> tuple[str, ...]:
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if name.startswith("/") or ".." in parts or not parts or VERSIONS_DIR in parts:
        raise InvalidInput(f"invalid archive entry {name!r}: entries are relative paths without '..'")
    return parts


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _write(path: Path, data: bytes) -> None:
    """Write a file in one rename, so a reader sees the old content or the new one."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _join(parts: tuple[str, ...]) -> str:
    return "/" + "/".join(parts)


def _show(path: object) -> str:
    text = str(path)
    return text if len(text) <= 200 else text[:200] + "..."


def deploy_info(path: Path) -> dict[str, Any]:
    """`commit` and `run` of a deployed folder's DEPLOY_INFO file; nothing when it is absent or malformed."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_DEPLOY_INFO_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {}
    commit = data.get("commit")
    if isinstance(commit, str) and _COMMIT.fullmatch(commit):
        found["commit"] = commit
    url = data.get("run_url")
    if isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) <= 2048:
        build = _BUILD_ID.search(url)
        found["run"] = {"id": int(build.group(1)) if build else None, "url": url}
    return found
