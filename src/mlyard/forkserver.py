"""A fork server ("zygote"): one process imports what its children need once, then forks one per request.

Two users: the warm pool of scoring processes (`python -m mlyard.serving --zygote --control-fd N`, started by
mlyard.serving.pool; docs/serving.md) and the environments' MLflow servers (`python -m
mlyard.registry.tracking_server --zygote --control-fd N`, started by mlyard.api.mlflow_mount; docs/registry.md).
`Zygote.start` starts such a process with the caller's clean environment, never the mlyard server's (which holds
its token: Python's multiprocessing forkserver would inherit it). The process imports its modules with the
collector paused and its objects frozen (mlyard.imports) and calls `serve_forks`, which says `warm` on N (a Unix
SOCK_SEQPACKET socket: one message per send), then serves requests on it until the caller's end closes (the
caller closed, or the mlyard server exited or was killed), and exits. Its forks keep running (each watches
what its own user gives it: a scoring standby its stdin until assigned, an MLflow server its stdin always).

The protocol, one datagram each, at most MAX_MESSAGE bytes:
- zygote -> caller: `warm` once; `forked PID` with the child's pidfd attached (os.pidfd_open, taken before the
  zygote can reap it); `exit PID CODE` when it reaped a fork (CODE as Popen's returncode: -N for signal N);
  `error TEXT` for a request it refused.
- caller -> zygote: `fork` with two descriptors attached (socket.send_fds): the read end of the child's stdin
  and the write end of its readiness pipe. The caller keeps the other ends.

A fork calls os.setsid (its own session and process group, the group's leader: `stop_process_group`,
`Endpoint.stop` and the MLflow servers' `stop_process` signal it by pid as before; its command line is the
zygote's), resets the zygote's signal handling, closes the zygote's descriptors, then runs the caller's
`become(stdin_fd, ready_fd)`: a scoring standby reads ONE assignment on its stdin and becomes that deployment's
scoring server, or exits 0 when its stdin closes unassigned; an MLflow server reads its environment's
configuration and serves it. It shares nothing with the zygote or its siblings but the imported modules' pages
(copy on write). The zygote forks only while it is single-threaded (no event loop, native thread pools at one
thread: the pool's environment has `thread_pool_env(1)`; the one exception is jemalloc's background thread,
which pyarrow's allocator starts and which jemalloc itself makes fork-safe); if the imports left other threads,
it says so and exits before `warm`, and its users start their processes cold.

`Forked` is the caller's handle of a fork, what callers use from subprocess.Popen (pid, stdin, poll, wait,
returncode). Its exit code comes from the zygote's `exit` report. If the zygote is gone (killed; its forks
keep running, reparented to init), the handle tells alive or dead from its pidfd and reports EXIT_UNKNOWN with a
log line: nobody it can ask knows the code. `wait` never blocks past its timeout.

This module imports neither MLflow nor any app.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import BinaryIO

log = logging.getLogger("mlyard.forkserver")

MAX_MESSAGE = 256  # every message of the protocol is one short line
EXIT_UNKNOWN = -1  # a fork's exit code once its zygote is gone (logged): nobody can tell the real one
REPORT_GRACE = 5.0  # seconds a live zygote has to report the code of a fork its pidfd says has exited
FORK_TIMEOUT = 30.0  # the longest the pool waits for a warm zygote's answer to `fork`
SESSION_TIMEOUT = 10.0  # the longest the zygote waits for a fork's setsid before it answers
THREAD_JOIN_SECONDS = 5.0  # the longest the zygote waits for its imports' Python threads to end before it checks
FORK_SAFE_THREAD = "jemalloc_bg_thd"  # the only other thread the zygote may have (see _other_threads)


class ZygoteGone(OSError):
    """The zygote exited (or refused a request) before it answered."""


class Forked:
    """A process forked by a zygote, seen from the caller's side (what the callers use of subprocess.Popen)."""

    def __init__(self, pid: int, pidfd: int, stdin: BinaryIO, zygote: Zygote) -> None:
        self.pid = pid
        self.stdin: BinaryIO | None = stdin
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._zygote = zygote
        self._dead_since: float | None = None

    def poll(self) -> int | None:
        with self._zygote.changed:
            if self.returncode is None and self._pidfd >= 0 and select.select([self._pidfd], [], [], 0)[0]:
                now = time.monotonic()
                self._dead_since = self._dead_since or now
                if self._zygote.gone or now - self._dead_since > REPORT_GRACE:
                    log.warning("forked process %d exited; its exit code is unknown (its zygote %s)", self.pid,
                                "is gone" if self._zygote.gone else "did not report it")  # fmt: skip
                    self._exited(EXIT_UNKNOWN)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code once the process exited; subprocess.TimeoutExpired after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            remaining = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if remaining <= 0:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout or 0)
            with self._zygote.changed:
                if self.returncode is None:
                    self._zygote.changed.wait(remaining)
        return code

    def _exited(self, code: int) -> None:
        """Record the exit code (the zygote's lock held)."""
        self.returncode = code
        self._close_pidfd()
        self._zygote.changed.notify_all()

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1

    def __del__(self) -> None:
        self._close_pidfd()


class Zygote:
    """The caller's side of one zygote process: its control socket and a thread reading its reports."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.process = process
        self.warm = False
        self.gone = False
        self.changed = threading.Condition()
        self._control = control
        self._children: dict[int, Forked] = {}  # forks not yet reported exited (bounded by the live forks)
        self._answers: list[tuple[bytes, list[int]]] = []  # answers to `fork`, in order
        self._early: dict[int, int] = {}  # exits of forks reported before `fork` took their answer (at most one)
        self._requests = threading.Lock()  # one `fork` at a time: answers come in request order
        threading.Thread(target=self._read, name=f"mlyard-zygote-{process.pid}", daemon=True).start()

    @classmethod
    def start(
        cls, python: str, env: dict[str, str], *, output: int | BinaryIO, cwd: str, module: str = "mlyard.serving"
    ) -> Zygote:
        """`python -m MODULE --zygote --control-fd N` (MODULE's main calls `serve_forks(N, ...)` once imported)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [python, "-m", module, "--zygote", "--control-fd", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                pass_fds=(theirs.fileno(),), start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(process, ours)

    def wait_warm(self, timeout: float) -> bool:
        """True once the zygote said `warm`; False when it is gone (exited, even before the reader saw its end of the
        socket close) or after `timeout` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.warm or self.gone, timeout)
            warm = self.warm and not self.gone
        return warm and self.process.poll() is None

    def fork(self) -> tuple[Forked, int]:
        """A new child: its handle (with its stdin) and the read end of its readiness pipe."""
        stdin_read, stdin_write = os.pipe()
        ready_read, ready_write = os.pipe()
        try:
            with self._requests:
                try:
                    if self.gone:
                        raise OSError("its control socket is closed")
                    socket.send_fds(self._control, [b"fork"], [stdin_read, ready_write])
                except OSError as exc:
                    raise ZygoteGone(f"the zygote {self.process.pid} is gone ({exc})") from None
                with self.changed:
                    if not self.changed.wait_for(lambda: self._answers or self.gone, FORK_TIMEOUT):
                        self.gone = True  # its late answer would be taken for the next request's: never ask again
                        with contextlib.suppress(OSError):
                            self._control.shutdown(socket.SHUT_RDWR)
                        raise ZygoteGone(f"the zygote {self.process.pid} did not answer in {FORK_TIMEOUT:.0f} s")
                    if not self._answers:
                        raise ZygoteGone(f"the zygote {self.process.pid} is gone")
                    message, fds = self._answers.pop(0)
                    words = message.split()
                    if words[:1] != [b"forked"] or len(words) != 2 or not words[1].isdigit() or len(fds) != 1:
                        for fd in fds:
                            os.close(fd)
                        raise ZygoteGone(f"the zygote {self.process.pid} refused: {message.decode(errors='replace')}")
                    child = Forked(int(words[1]), fds[0], open(stdin_write, "wb"), self)  # noqa: SIM115
                    if child.pid in self._early:
                        child._exited(self._early.pop(child.pid))
                    else:
                        self._children[child.pid] = child
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(stdin_write)
            os.close(ready_read)
            raise
        finally:
            os.close(stdin_read)
            os.close(ready_write)
        return child, ready_read

    def alive(self) -> bool:
        return not self.gone and self.process.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """Close the control socket (the zygote exits; its forks keep running), kill it if it lingers."""
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)

    def _read(self) -> None:
        """Read the zygote's messages until its end closes (it exited), then mark it gone."""
        try:
            while True:
                try:
                    message, fds, flags, _ = socket.recv_fds(self._control, MAX_MESSAGE, 2)
                except OSError:
                    break
                if not message:
                    break
                if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                    for fd in fds:
                        os.close(fd)
                    log.warning("zygote %d: a message was truncated; ignored", self.process.pid)
                    continue
                self._received(message, fds)
        finally:
            with self.changed:
                self.gone = True
                self.changed.notify_all()
            with contextlib.suppress(OSError):
                self._control.close()

    def _received(self, message: bytes, fds: list[int]) -> None:
        words = message.split()
        with self.changed:
            if words == [b"warm"]:
                self.warm = True
            elif words[:1] == [b"exit"] and len(words) == 3 and words[1].isdigit() and words[2].lstrip(b"-").isdigit():
                pid, code = int(words[1]), int(words[2])
                child = self._children.pop(pid, None)
                if child is not None:
                    child._exited(code)
                elif any(answer.split()[1:2] == [words[1]] for answer, _ in self._answers):
                    self._early[pid] = code  # its `forked` answer is not taken yet
            else:  # `forked PID` or `error TEXT`: the answer to the oldest request
                self._answers.append((message, fds))
                fds = []
            for fd in fds:
                os.close(fd)
            self.changed.notify_all()


# The zygote process's side.


def serve_forks(
    control_fd: int, become_standby: Callable[[int, int], int], *, name: str = "the scoring zygote",
    without: str = "every deployment starts cold (set the native thread pools to 1 thread)",
) -> int:  # fmt: skip
    """The zygote's loop (its imports done): fork a child per `fork` request, report their exits, until the
    caller's end of `control_fd` closes. The child runs `become_standby(stdin_fd, ready_fd)` and exits with it.
    `name` and `without` (what happens without it) word the refusal of a zygote that is not single-threaded."""
    control = socket.socket(fileno=control_fd)
    threads = _threads_left(THREAD_JOIN_SECONDS)
    if threads:
        print(f"error: {name} has other threads after its imports ({', '.join(threads)}); it forks only "
              f"single-threaded: {without}", file=sys.stderr, flush=True)  # fmt: skip
        return 2
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    try:
        control.send(b"warm")
    except OSError:
        return 0  # the pool closed while this one imported
    children: set[int] = set()
    try:
        while True:  # bounded by the control channel: it ends when the caller's end closes
            readable = select.select([control.fileno(), wake_read], [], [], 1.0)[0]
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 1024)
            _reap(control, children)
            if control.fileno() not in readable:
                continue
            try:
                message, fds, flags, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
            except OSError:
                break
            if not message:
                break  # the caller closed its end: the server stopped or died
            if message != b"fork" or len(fds) != 2 or flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                for fd in fds:
                    os.close(fd)
                _send(control, b"error: expected `fork` with 2 descriptors")
                continue
            stdin_fd, ready_fd = fds
            session_read, session_write = os.pipe()  # closed by the child once it leads its own session
            pid = os.fork()
            if pid == 0:
                os.close(session_read)
                _child(stdin_fd, ready_fd, session_write, control, (wake_read, wake_write), become_standby)
            children.add(pid)
            for fd in (stdin_fd, ready_fd, session_write):
                os.close(fd)
            with contextlib.suppress(OSError):  # its end closes at setsid (or its exit): then its pid is its group
                select.select([session_read], [], [], SESSION_TIMEOUT)
            os.close(session_read)
            pidfd = os.pidfd_open(pid)
            try:
                socket.send_fds(control, [f"forked {pid}".encode()], [pidfd])
            except OSError:
                break
            finally:
                os.close(pidfd)
    finally:
        signal.set_wakeup_fd(-1)
    return 0


def _threads_left(timeout: float) -> list[str]:
    """The threads left (`_other_threads`) after waiting at most `timeout` seconds in all for those the imports
    started to end: e.g. the AnyIO worker thread that runs a WSGI app's warm-up request, which ends once its event
    loop closed, but later on a busy machine. A joined Python thread's OS thread still runs its last instructions
    for a moment (it is still listed in /proc/self/task, unnamed: "python"): it is waited for too."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate()[:1000]:
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    while (threads := _other_threads()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads


def _other_threads() -> list[str]:
    """The names of this process's threads but the main one and jemalloc's background threads (pyarrow's
    allocator starts one; jemalloc takes its locks around fork and disables them in the child)."""
    if threading.active_count() > 1:
        return [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    names = []
    for task in os.listdir("/proc/self/task")[:1000]:
        if int(task) != os.getpid():
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
    return [name for name in names if name != FORK_SAFE_THREAD]


def _reap(control: socket.socket, children: set[int]) -> None:
    """Collect every exited fork (no zombies) and report `exit PID CODE` (at most one pass over them)."""
    for _ in range(len(children)):
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(control, f"exit {pid} {os.waitstatus_to_exitcode(status)}".encode())


def _send(control: socket.socket, message: bytes) -> None:
    with contextlib.suppress(OSError):  # the caller is gone: the loop sees the end of file next
        control.send(message)


def _child(
    stdin_fd: int, ready_fd: int, session_fd: int, control: socket.socket, wake: tuple[int, int],
    become: Callable[[int, int], int],
) -> None:  # fmt: skip
    """In the fork: a session of its own, the zygote's handlers and descriptors dropped, then the caller's child."""
    code = 1
    try:
        os.setsid()
        os.close(session_fd)  # the zygote answers `forked PID` once this closes: killpg(PID) reaches this process
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        for fd in wake:
            with contextlib.suppress(OSError):
                os.close(fd)
        if "numpy" in sys.modules:  # numpy's global generator would otherwise be the same in every fork
            sys.modules["numpy"].random.seed()
        code = become(stdin_fd, ready_fd)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what a standby's normal exit runs (the zygote's imports registered them)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)
