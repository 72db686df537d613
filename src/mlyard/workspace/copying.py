"""Copy a source tree into a new version folder.

Skipped: the folders ``.git``, ``__pycache__`` and ``.venv`` (anywhere in the tree). Symbolic links
are never followed: a link whose target lies inside the source (and outside a skipped folder) is
recreated as a relative link; a link pointing outside the source, an absolute link, a dangling
link and special files (FIFOs, sockets, devices) are skipped, each with a warning.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

EXCLUDED_DIRS = frozenset({".git", "__pycache__", ".venv"})


@dataclass
class CopyResult:
    files: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def copy_tree(source: Path, target: Path) -> CopyResult:
    """Copy `source` (an existing directory) into `target` (an empty, existing directory)."""
    result = CopyResult()
    source = source.resolve()
    for current, dirs, files in os.walk(source, followlinks=False):
        here = Path(current)
        rel_dir = here.relative_to(source)
        kept = [d for d in dirs if d not in EXCLUDED_DIRS and not (here / d).is_symlink()]
        links_to_dirs = [d for d in dirs if d not in EXCLUDED_DIRS and d not in kept]
        dirs[:] = sorted(kept)
        for name in sorted([*kept, *links_to_dirs, *files]):
            if name in kept:
                (target / rel_dir / name).mkdir()
            else:
                _copy_entry(source, here / name, target / rel_dir / name, result)
    return result


def _copy_entry(source: Path, path: Path, dest: Path, result: CopyResult) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        _copy_link(source, path, dest, result)
    elif stat.S_ISREG(mode):
        shutil.copy2(path, dest, follow_symlinks=False)
        result.files += 1
        result.bytes += path.lstat().st_size
    else:
        result.warnings.append(f"skipped {_rel(source, path)}: not a regular file, folder or link")


def _copy_link(source: Path, path: Path, dest: Path, result: CopyResult) -> None:
    text = os.readlink(path)
    rel = _rel(source, path)
    if os.path.isabs(text):
        result.warnings.append(f"skipped link {rel} -> {text}: absolute links are not deployed")
        return
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(source):
        result.warnings.append(f"skipped link {rel} -> {text}: it points outside the source folder")
        return
    inside = resolved.relative_to(source)
    if not resolved.exists() or EXCLUDED_DIRS.intersection(inside.parts):
        result.warnings.append(f"skipped link {rel} -> {text}: its target is missing or not deployed")
        return
    os.symlink(os.path.relpath(resolved, path.parent), dest)
    result.files += 1


def _rel(source: Path, path: Path) -> str:
    return path.relative_to(source).as_posix()
