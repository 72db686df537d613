"""Run one step process: its own process group, output read line by line (logging commands applied,
secrets masked, batched to the reporter), step and job timeouts, cancel, and killing what is left.

Every process gets `MLYARD_JOB` (the job id), `MLYARD_AGENT_MARK` (from the agent's environment) and
`MLYARD_JOB_RUN` (unique per execution) so that the agent, or a restarted server, can find and kill
processes a step left behind, even those that started their own session.
"""

from __future__ import annotations

import contextlib
import json
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
from mlyard.agent.state import Interrupted, JobState, StepError, StepGroup, StepRun
from mlyard.agent.warm import send_request

KILL_GRACE_SECONDS = 3.0
CANCEL_POLL_SECONDS = 0.5
DRAIN_SECONDS = 0.2  # after the main process exits, how long output of its children is still awaited
NAMESPACE_END_SECONDS = 2.0  # how long the clean-up waits for a sandboxed step's PID namespace to be emptied
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
    info = -1  # the read end of bwrap's --info-fd pipe (the namespace init's pid)
    from_warm = proc is not None
    if proc is not None:
        send_request(proc, argv, cwd=cwd, env=env, merge=not split_stderr)
    else:
        proc, info = _start(argv, cwd=cwd, env=env, job=job, split_stderr=split_stderr, writable=writable,
                            readable=readable)  # fmt: skip
    index = len(job.process_groups)
    job.process_groups.append(StepGroup(proc.pid))
    lines: queue.Queue[tuple[float, str, bool] | None] = queue.Queue()
    # a warm sandbox has both pipes: its stub merges the step's stderr into stdout unless split
    streams = [(proc.stdout, False)] + ([(proc.stderr, split_stderr)] if proc.stderr is not None else [])
    detached = threading.Event()
    try:
        for stream, is_err in streams:
            threading.Thread(target=_reader, args=(stream, is_err, lines, detached), daemon=True).start()
        return _follow(proc, lines, len(streams), job, run, timeout_seconds)
    finally:
        detached.set()
        job.log.flush()
        if info >= 0:  # bwrap wrote it as the sandbox started, before the step's command
            job.process_groups[index] = StepGroup(proc.pid, _namespace_init(info))
        if from_warm and warm is not None:
            warm.reported(proc)  # how many of the step's Python processes were forked from it (logged)


def _start(
    argv: list[str], *, cwd: Path, env: dict[str, str], job: JobState, split_stderr: bool, writable: Sequence[Path],
    readable: Sequence[Path],
) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """Start argv in the job's sandbox, in a new session (its own process group); with the read end of a pipe
    to which bwrap writes its namespace init's pid (-1 unsandboxed)."""
    info, write = os.pipe() if job.sandbox.enabled else (-1, -1)
    try:
        command = job.sandbox.command(argv, cwd=cwd, work=[job.workspace.root], readable=readable,
                                      writable=writable, info_fd=write if write >= 0 else None)  # fmt: skip
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if split_stderr else subprocess.STDOUT, start_new_session=True,
            pass_fds=(write,) if write >= 0 else (),
        )  # fmt: skip
    except BaseException:
        if info >= 0:
            os.close(info)
        raise
    finally:
        if write >= 0:
            os.close(write)
    return proc, info


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


def _namespace_init(fd: int) -> int | None:
    """The pid of a sandbox's PID namespace init, from the JSON bwrap wrote to its --info-fd (written before
    the step's command starts; read without blocking, at most 4 KiB); None when it cannot be told."""
    try:
        os.set_blocking(fd, False)
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        pid = json.loads(data).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def namespace_ended(group: StepGroup) -> bool:
    """Whether every process of a sandboxed step is gone, read from its namespace init alone (no scan of
    the machine's processes): the kernel makes an init a zombie only after it killed and reaped every other
    process of its namespace. The init is gone, a zombie, or its pid now names a process outside the step's
    group (reused: the init was gone)."""
    if group.namespace_init is None:
        return False
    try:
        stat = Path(f"/proc/{group.namespace_init}/stat").read_bytes()
    except OSError:  # no such process any more
        return True
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
    if len(fields) < 3:
        return False
    return fields[0] in (b"Z", b"X") or int(fields[2]) != group.pgid


def wait_namespace_ended(group: StepGroup, timeout: float = NAMESPACE_END_SECONDS) -> bool:
    """Wait (polling /proc/<init>/stat, at most `timeout` s) until a sandboxed step's namespace is empty. A step's
    bwrap that exited took the namespace with it (its init dies with its parent, --die-with-parent, and the
    kernel kills what is left), which takes a few milliseconds."""
    if group.namespace_init is None:
        return False
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not namespace_ended(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    return True


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
