"""ArchiveFiles@2 (zip, tar, tar.gz/bz2/xz) and ExtractFiles@1 (.zip, .tar, .tar.gz, .tgz, .tar.bz2,
.tbz2, .tar.xz, .txz), written with Python's zipfile and tarfile: no 7z on the agent, so `7z` and `wim`
archives are refused with a clear message.

Extraction checks every member first: no absolute paths, no `..` leaving the destination, no links
leading out of it, no devices; at most MAX_MEMBERS members and MAX_TASK_BYTES bytes.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

from mlyard.agent.environment import expand, input_flag, inside_work_dir, step_input
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.agent.steps.files import MAX_TASK_BYTES, SOURCES_DEFAULT, empty_folder, matching
from mlyard.protocol import SUCCEEDED, StepSpec

MAX_MEMBERS = 200_000
ARCHIVE_DEFAULT = "$(Build.ArtifactStagingDirectory)/$(Build.BuildId).zip"
TAR_MODES = {"gz": "gz", "bz2": "bz2", "xz": "xz", "none": ""}
_TAR_SUFFIXES = {".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tbz2": "bz2", ".tbz": "bz2",
                 ".tar.xz": "xz", ".txz": "xz"}  # fmt: skip


def _archive_entries(job: JobState, root: Path, include_root: bool, archive: Path) -> list[tuple[Path, str]]:
    """(path on disk, name in the archive) of every file and folder to archive, links kept as links."""
    if root.is_file():
        return [(root, root.name)]
    prefix = root.name + "/" if include_root else ""
    entries: list[tuple[Path, str]] = [(root, root.name)] if include_root else []
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            path = Path(folder) / name
            if path == archive:
                continue  # the archive being written inside the folder it archives
            count += 1
            if count > MAX_MEMBERS:
                raise StepError(f"more than {MAX_MEMBERS} files to archive under {root}")
            entries.append((path, prefix + path.relative_to(root).as_posix()))
    return entries


def archive_files(step: StepSpec, job: JobState, run: StepRun) -> str:
    """ArchiveFiles@2."""
    root = inside_work_dir(job, step_input(job, step, "rootFolderOrFile", "$(Build.BinariesDirectory)"),
                           "the folder or file to archive")  # fmt: skip
    kind = step_input(job, step, "archiveType", "zip").strip().lower()
    if kind in ("7z", "wim"):
        raise StepError(f"archiveType '{kind}' is not supported by the mlyard agent (no 7z on agents); "
                        "use archiveType zip or tar")  # fmt: skip
    if kind not in ("zip", "tar"):
        raise StepError(f"archiveType '{kind}' is not valid: use zip, tar, 7z or wim")
    compression = step_input(job, step, "tarCompression", "gz").strip().lower()
    if kind == "tar" and compression not in TAR_MODES:
        raise StepError(f"tarCompression '{compression}' is not valid: use gz, bz2, xz or none")
    raw_archive = step_input(job, step, "archiveFile", ARCHIVE_DEFAULT)
    archive = inside_work_dir(job, raw_archive, "the archive file")
    if not root.exists():
        raise StepError(f"the folder or file to archive does not exist: {root}")
    replace = input_flag(job, step, "replaceExistingArchive", True)
    verbose = input_flag(job, step, "verbose")
    entries = _archive_entries(job, root, input_flag(job, step, "includeRootFolder", True), archive)
    if archive.exists() and replace:
        job.log.write(step, f"Removing the existing archive {archive}")
        archive.unlink()
    archive.parent.mkdir(parents=True, exist_ok=True)
    adding = archive.exists()
    if kind == "zip":
        _write_zip(job, archive, entries, append=adding)
    else:
        if adding and TAR_MODES[compression]:
            raise StepError(f"cannot add files to the compressed archive {archive}; "
                            "set replaceExistingArchive: true or tarCompression: none")  # fmt: skip
        mode = ("a" if adding else "w") + (f":{TAR_MODES[compression]}" if TAR_MODES[compression] else "")
        total = sum(path.lstat().st_size for path, _ in entries if path.is_file() and not path.is_symlink())
        if total > MAX_TASK_BYTES:
            raise StepError(f"the files to archive are larger than {MAX_TASK_BYTES} bytes")
        with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
            for path, name in entries:
                tar.add(path, arcname=name, recursive=False)  # links are stored as links
    if verbose:
        for _, name in entries:
            job.log.write(step, f"  adding: {name}")
    job.log.write(step, f"{'Added' if adding else 'Archived'} {len(entries)} entries into {archive}")
    return SUCCEEDED


def _write_zip(job: JobState, archive: Path, entries: list[tuple[Path, str]], *, append: bool) -> None:
    total = 0
    with zipfile.ZipFile(archive, "a" if append else "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path, name in entries:
            if path.is_dir() and not path.is_symlink():
                zipped.write(path, name + "/")
                continue
            real = inside_work_dir(job, str(path), "the file to archive")  # zip stores what a link points to
            if not real.is_file():
                continue  # a folder behind a link, a pipe or a device: nothing to store
            total += real.stat().st_size
            if total > MAX_TASK_BYTES:
                raise StepError(f"the files to archive are larger than {MAX_TASK_BYTES} bytes")
            zipped.write(real, name)


def _tar_compression(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, mode in _TAR_SUFFIXES.items():
        if name.endswith(suffix):
            return mode
    return None


def _inside(root: str, name: str) -> str:
    """Where a member goes; refused if its name, or a link already in the destination, leads out of it."""
    target = os.path.normpath(os.path.join(root, name))
    if os.path.isabs(name) or os.path.commonpath([root, target]) != root:
        raise StepError(f"the archive member {name!r} would be written outside the destination folder")
    real_root, real_parent = os.path.realpath(root), os.path.realpath(os.path.dirname(target))
    if os.path.commonpath([real_root, real_parent]) != real_root:
        raise StepError(f"the archive member {name!r} would be written through a link leading out of the "
                        "destination folder")  # fmt: skip
    return target


def _unlink_link(target: str) -> None:
    """An existing link where a member goes is replaced, never written through."""
    if os.path.islink(target):
        os.unlink(target)


def _check_tar(tar: tarfile.TarFile, root: str, archive: Path) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise StepError(f"{archive} has more than {MAX_MEMBERS} members")
        target = _inside(root, member.name)
        if member.issym() or member.islnk():
            base = os.path.dirname(target) if member.issym() else root
            link = os.path.normpath(os.path.join(base, member.linkname))
            if os.path.isabs(member.linkname) or os.path.commonpath([root, link]) != root:
                raise StepError(f"the archive member {member.name!r} is a link leading out of the destination")
        elif not (member.isfile() or member.isdir()):
            raise StepError(f"the archive member {member.name!r} is a special file (device or pipe)")
        total += member.size
        if total > MAX_TASK_BYTES:
            raise StepError(f"{archive} holds more than {MAX_TASK_BYTES} bytes")
    return members


def _extract_tar(archive: Path, destination: Path, overwrite: bool) -> int:
    root = os.path.normpath(destination)
    with tarfile.open(archive, "r:*") as tar:  # the compression is read from the file
        members = _check_tar(tar, root, archive)
        if not overwrite:
            members = [m for m in members if m.isdir() or not os.path.lexists(os.path.join(root, m.name))]
        for member in members:
            _unlink_link(os.path.join(root, member.name))
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members, filter="data")
        else:  # every member checked above
            tar.extractall(destination, members)
        return len(members)


def _extract_zip(archive: Path, destination: Path, overwrite: bool) -> int:
    root = os.path.normpath(destination)
    with zipfile.ZipFile(archive) as zipped:
        infos = zipped.infolist()
        if len(infos) > MAX_MEMBERS:
            raise StepError(f"{archive} has more than {MAX_MEMBERS} members")
        if sum(info.file_size for info in infos) > MAX_TASK_BYTES:
            raise StepError(f"{archive} holds more than {MAX_TASK_BYTES} bytes")
        written = 0
        for info in infos:
            target = _inside(root, info.filename)
            if not info.is_dir() and os.path.lexists(target) and not overwrite:
                continue
            _unlink_link(target)
            zipped.extract(info, destination)  # links in zips are written as plain files
            written += 1
        return written


def extract_files(step: StepSpec, job: JobState, run: StepRun) -> str:
    """ExtractFiles@1."""
    patterns = step_input(job, step, "archiveFilePatterns", "**/*.zip")
    raw_destination = step_input(job, step, "destinationFolder").strip()
    if not raw_destination:
        raise StepError("input destinationFolder is required: name the folder to extract into")
    destination = inside_work_dir(job, raw_destination, "the destination folder")
    overwrite = input_flag(job, step, "overwriteExistingFiles")
    if step_input(job, step, "pathToSevenZipTool").strip():
        run.warning("pathToSevenZipTool is ignored: the mlyard agent extracts zip and tar archives itself")
    root = inside_work_dir(job, expand(job, SOURCES_DEFAULT), "the sources folder")
    archives = [path for path in matching(job, root, patterns, what="the archive folder") if path.is_file()]
    if not archives:
        raise StepError(f"no archive matched '{patterns.strip()}' in {root}")
    if input_flag(job, step, "cleanDestinationFolder", True):
        job.log.write(step, f"Cleaning the destination folder {destination}")
        empty_folder(job, destination, "the destination folder")
    destination.mkdir(parents=True, exist_ok=True)
    for path in archives:
        real = inside_work_dir(job, str(path), "the archive")
        mode = _tar_compression(real)
        job.log.write(step, f"Extracting {path} to {destination}")
        try:
            if mode is not None:
                count = _extract_tar(real, destination, overwrite)
            elif real.name.lower().endswith(".zip"):
                count = _extract_zip(real, destination, overwrite)
            else:
                raise StepError(f"{path}: only .zip and .tar (.tar.gz, .tgz, .tar.bz2, .tar.xz) archives can be "
                                "extracted by the mlyard agent (no 7z)")  # fmt: skip
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise StepError(f"{path} is not a readable archive: {exc}") from None
        job.log.write(step, f"Extracted {count} entries")
    return SUCCEEDED
