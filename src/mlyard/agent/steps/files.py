"""CopyFiles@2 and DeleteFiles@1, run by the agent itself on the job's files.

Inputs are read by their Azure names (any case), with the documented defaults when absent. Every path
stays inside the job's work directory: a folder outside it, or a link leading out of it, fails the step.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mlyard.agent.environment import input_flag, inside_work_dir, step_input
from mlyard.agent.patterns import PatternError, find_root, match_paths, split_patterns
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import SUCCEEDED, StepSpec

SOURCES_DEFAULT = "$(Build.SourcesDirectory)"
MAX_TASK_BYTES = 20 * 1024**3  # bytes one file task may copy, archive or extract
MAX_RETRIES = 10
MAX_RETRY_DELAY_SECONDS = 10.0


def matching(
    job: JobState, root: Path, patterns: str, *, dot: bool = True, follow_links: bool = True, what: str = "the path"
) -> list[Path]:
    """The paths the patterns select (relative ones rooted at `root`): the folder each pattern lists must
    be inside the job's work directory (`what` names it in the error)."""
    for include, pattern in split_patterns_or_fail(patterns):
        if include:
            inside_work_dir(job, str(find_root(pattern, root)), what)
    try:
        return match_paths(root, patterns, dot=dot, within=job.workspace.root.resolve(), follow_links=follow_links)
    except PatternError as exc:
        raise StepError(str(exc)) from None


def split_patterns_or_fail(patterns: str) -> list[tuple[bool, str]]:
    try:
        return split_patterns(patterns)
    except PatternError as exc:
        raise StepError(str(exc)) from None


def _number(job: JobState, step: StepSpec, name: str, default: str, *, low: int, high: int) -> int:
    text = step_input(job, step, name, default).strip()
    try:
        value = int(text)
    except ValueError:
        raise StepError(f"input {name} must be a whole number, not {text!r}") from None
    return min(max(value, low), high)


def empty_folder(job: JobState, folder: Path, what: str) -> None:
    """Delete what `folder` holds (links are removed, never followed)."""
    if folder == job.workspace.root.resolve():
        raise StepError(f"{what} is the job's work directory itself: it cannot be cleaned")
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def copy_files(step: StepSpec, job: JobState, run: StepRun) -> str:
    """CopyFiles@2: the files under SourceFolder matching Contents, copied into TargetFolder."""
    source = inside_work_dir(job, step_input(job, step, "SourceFolder", SOURCES_DEFAULT), "the source folder")
    raw_target = step_input(job, step, "TargetFolder").strip()
    if not raw_target:
        raise StepError("input TargetFolder is required: name the folder to copy into")
    target = inside_work_dir(job, raw_target, "the target folder")
    contents = step_input(job, step, "Contents", "**")
    overwrite = input_flag(job, step, "OverWrite")
    flatten = input_flag(job, step, "flattenFolders")
    keep_times = input_flag(job, step, "preserveTimestamp")
    retries = _number(job, step, "retryCount", "0", low=0, high=MAX_RETRIES)
    delay = _number(job, step, "delayBetweenRetries", "1000", low=0, high=int(MAX_RETRY_DELAY_SECONDS * 1000)) / 1000
    if not source.is_dir():
        raise StepError(f"the source folder does not exist: {source}")
    files = [path for path in matching(job, source, contents, what="the folder to copy from") if not path.is_dir()]
    job.log.write(step, f"Found {len(files)} file(s) in {source} matching {contents.strip()!r}")
    if input_flag(job, step, "CleanTargetFolder"):
        job.log.write(step, f"Cleaning the target folder {target}")
        empty_folder(job, target, "the target folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if not input_flag(job, step, "ignoreMakeDirErrors"):
            raise StepError(f"the target folder {target} could not be created: {exc}") from None
    copied = 0
    total = 0
    for path in files:
        real = inside_work_dir(job, str(path), "the file to copy")  # a link must not lead out of the job
        if not real.is_file():
            continue  # a pipe or a device: reading it could block
        total += real.stat().st_size
        if total > MAX_TASK_BYTES:
            raise StepError(f"the files to copy are larger than {MAX_TASK_BYTES} bytes; copy fewer files")
        destination = target / (path.name if flatten else path.relative_to(source))
        if destination.exists() and not overwrite:
            job.log.write(step, f"File {path} already exists at {destination} (OverWrite is false): skipped")
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        inside_work_dir(job, str(destination.parent), "the folder to copy into")  # not through a link out
        _copy_with_retries(real, destination, keep_times=keep_times, retries=retries, delay=delay)
        job.log.write(step, f"Copying {path} to {destination}")
        copied += 1
    job.log.write(step, f"Copied {copied} file(s) to {target}")
    return SUCCEEDED


def _copy_with_retries(source: Path, destination: Path, *, keep_times: bool, retries: int, delay: float) -> None:
    for attempt in range(retries + 1):
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.is_symlink():
                destination.unlink()  # replace the link, never write where it points
            if destination.is_dir():
                raise StepError(f"cannot copy {source}: the target {destination} is a folder")
            (shutil.copy2 if keep_times else shutil.copy)(source, destination)
            return
        except OSError as exc:
            if attempt == retries:
                raise StepError(f"could not copy {source} to {destination}: {exc}") from None
            time.sleep(delay)


def delete_files(step: StepSpec, job: JobState, run: StepRun) -> str:
    """DeleteFiles@1: the files and folders under SourceFolder matching Contents (folders with all they
    hold); names starting with a dot only when RemoveDotFiles is true."""
    source = inside_work_dir(job, step_input(job, step, "SourceFolder", SOURCES_DEFAULT), "the source folder")
    contents = step_input(job, step, "Contents", "myFileShare")
    remove_source = input_flag(job, step, "RemoveSourceFolder")
    if remove_source and source == job.workspace.root.resolve():
        raise StepError("RemoveSourceFolder cannot remove the job's work directory itself")
    if not source.exists():
        job.log.write(step, f"The source folder {source} does not exist: nothing to delete")
        return SUCCEEDED
    matched = matching(job, source, contents, dot=input_flag(job, step, "RemoveDotFiles"), follow_links=False,
                       what="the folder to delete in")  # fmt: skip
    deleted = 0
    for path in sorted(matched, key=lambda item: len(item.parts), reverse=True):  # children first
        if not os.path.lexists(path):
            continue  # inside a folder deleted already
        job.log.write(step, f"Deleting {path}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        deleted += 1
    if remove_source:
        job.log.write(step, f"Deleting the source folder {source}")
        shutil.rmtree(source)
    job.log.write(step, f"Deleted {deleted} matching file(s) and folder(s)")
    return SUCCEEDED
