"""Run one step process: its own process group, output read line by line (logging commands applied,
secrets masked, batched to the reporter), step and job timeouts, cancel, and killing what is left.

Every process gets `MLYARD_JOB` (the job id), `MLYARD_AGENT_MARK` (from the agent's environment) and
`MLYARD_JOB_RUN` (unique per execution) so that the agent, or a restarted server, can find and kill
processes a step left behind, even those that started their own session.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from mlyard.agent.commands import handle_line
from mlyard.agent.state import Interrupted, JobState, StepError, StepRun
from mlyard.agent.warm import send_request

KILL_GRACE_SECONDS = 3.0
CANCEL_POLL_SECONDS = 0.5
DRAIN_SECONDS = 0.2  # after the main process exits, how long output of its children is still awaited
_EOF = None


@dataclass(frozen=True)
class ProcessEnd:
    """How a process ended by itself (a killed one raises Interrupted instead)."""

    exit_code: int
    stderr_lines: int = 0


def _reader(
    stream: IO[bytes], is_err: bool, lines: queue.Queue[tuple[float, str, bool] | None], detached: threading.Event
) -> None:
    """Queue the lines of one stream; once the step is over (detached), read and drop what background
    children still write, so that they never block on a full pipe."""
    try:
        for raw in iter(stream.readline, b""):
            if not detached.is_set():
                lines.put((time.time(), raw.decode("utf-8", "replace").rstrip("\r\n"), is_err))
    except (OSError, ValueError):
        pass
    finally:
        lines.put(_EOF)
        with contextlib.suppress(OSError):
            stream.close()


def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    job: JobState,
    run: StepRun,
    timeout_seconds: float | None,
    split_stderr: bool = False,
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
    python: bool = False,
) -> ProcessEnd:
    """Run argv to its end, in the job's sandbox (the job's work directory and `writable` bound
    read-write, `readable` read-only); raises Interrupted when a timeout or a cancel killed its group.

    `python`: the step runs Python; it then gets a warm sandbox of the job's pool when one waits and the
    sandbox needs nothing but the job's directory (mlyard.agent.warm)."""
    if not cwd.is_dir():
        raise StepError(f"the working directory does not exist: {cwd}")
    warm = job.warm
    proc = None
    if python and warm is not None and not readable and not writable and warm.holds(job.workspace.root):
        proc = warm.take()
    if proc is not None:
        send_request(proc, argv, cwd=cwd, env=env, merge=not split_stderr)
    else:
        command = job.sandbox.command(argv, cwd=cwd, work=[job.workspace.root], readable=readable, writable=writable)
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if split_stderr else subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    job.process_groups.append(proc.pid)
    lines: queue.Queue[tuple[float, str, bool] | None] = queue.Queue()
    # a warm sandbox has both pipes: its stub merges the step's stderr into stdout unless split
    streams = [(proc.stdout, False)] + ([(proc.stderr, split_stderr)] if proc.stderr is not None else [])
    detached = threading.Event()
    for stream, is_err in streams:
        threading.Thread(target=_reader, args=(stream, is_err, lines, detached), daemon=True).start()
    try:
        return _follow(proc, lines, len(streams), job, run, timeout_seconds)
    finally:
        detached.set()
        job.log.flush()


def _follow(
    proc: subprocess.Popen[bytes],
    lines: queue.Queue[tuple[float, str, bool] | None],
    open_streams: int,
    job: JobState,
    run: StepRun,
    timeout_seconds: float | None,
) -> ProcessEnd:
    started = time.monotonic()
    step_deadline = started + timeout_seconds if timeout_seconds else None
    watch_cancel = not job.canceled
    next_poll = started + CANCEL_POLL_SECONDS
    exited_at: float | None = None
    stderr_lines = 0
    while open_streams:
        try:
            item = lines.get(timeout=0.05)
        except queue.Empty:
            item = ()  # type: ignore[assignment]
        now = time.monotonic()
        if item is _EOF:
            open_streams -= 1
        elif item:
            when, text, is_err = item
            stderr_lines += is_err
            handle_line(text, job, run)
            job.log.write(run.step, text, when)
        job.log.tick()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None:
            if not item and now - exited_at > DRAIN_SECONDS:
                break  # children that kept the output open live on until the job ends
            continue
        reason = None
        if step_deadline is not None and now >= step_deadline:
            reason = "timeout"
        elif now >= job.deadline:
            reason = "job_timeout"
        elif watch_cancel and now >= next_poll:
            next_poll = now + CANCEL_POLL_SECONDS
            if job.reporter.cancel_requested():
                reason = "canceled"
        if reason:
            kill_group(proc.pid, proc)
            proc.wait()
            raise Interrupted(reason)
    return ProcessEnd(proc.wait(), stderr_lines)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def kill_group(pgid: int, leader: subprocess.Popen[bytes] | None = None, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group, then SIGKILL whatever is still alive after `grace` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()  # reap the leader, so that it does not count as alive
        if not _group_members(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a dead child of a parent that does not reap is gone for our purpose)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_group_if_marked(pgid: int, variable: str, value: str) -> None:
    """Kill a process group left from a step, if it still holds one of our processes (a group id of a
    finished step could in theory be reused by an unrelated process group)."""
    for process in _group_members(pgid):
        try:
            if process.environ().get(variable) == value:
                kill_group(pgid)
                return
        except (psutil.Error, OSError):
            continue


def kill_marked(variable: str, value: str, grace: float = KILL_GRACE_SECONDS) -> int:
    """Kill every process of this user whose environment has `variable=value`; returns how many."""
    me = os.getpid()
    found = []
    for process in psutil.process_iter(["status"]):
        if process.pid == me or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if process.environ().get(variable) == value:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    for process in found:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    deadline = time.monotonic() + grace
    while any(_alive(process) for process in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in found:
        if _alive(process):
            with contextlib.suppress(psutil.Error):
                process.kill()
    return len(found)
