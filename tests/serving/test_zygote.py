"""The warm pool's fork server (mlyard.serving.zygote) with a trivial standby instead of a scoring server: its
protocol, the forks' sessions and exit codes, reaping, and what happens when either end goes away. No MLflow:
each zygote here is a bare interpreter (the pool's real one is tested in test_pool.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from mlyard.serving.zygote import EXIT_UNKNOWN, MAX_MESSAGE, Zygote, ZygoteGone

# The standby: says `ready`, then exits with the number its stdin sends (0 when its stdin closes unassigned).
ZYGOTE = """
import _thread, os, sys, threading, time
from mlyard.serving.zygote import serve_forks

def become(stdin_fd, ready_fd):
    os.write(ready_fd, b"ready\\n")
    with open(stdin_fd, "rb") as stdin:
        line = stdin.readline(100)
    return int(line or b"0")

if sys.argv[2] == "threaded":
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
if sys.argv[2] == "ending":  # a thread the imports started that ends a little later (an AnyIO worker thread)
    threading.Thread(target=time.sleep, args=(0.5,), daemon=True).start()
if sys.argv[2] == "native-ending":  # an OS thread `threading` does not know (as a joined thread's last moment)
    _thread.start_new_thread(time.sleep, (0.5,))
sys.exit(serve_forks(int(sys.argv[1]), become))
"""


def _start(mode: str = "plain") -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(theirs.fileno()), mode], pass_fds=(theirs.fileno(),),
                               stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    theirs.close()
    return process, ours


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    process, control = _start()
    handle = Zygote(process, control)
    try:
        assert handle.wait_warm(60)
        yield handle
    finally:
        handle.close()
        process.stderr.close()  # type: ignore[union-attr]


def _gone(pid: int) -> bool:
    """True once `pid` no longer exists or is a zombie (a zombie nobody reaps would stay one)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                time.sleep(0.02)
                continue
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_forks_are_children_in_their_own_sessions_and_their_exit_codes_are_reported(zygote: Zygote) -> None:
    first, first_ready = zygote.fork()
    second, second_ready = zygote.fork()
    try:
        for child in (first, second):
            assert psutil.Process(child.pid).ppid() == zygote.process.pid
            assert os.getsid(child.pid) == child.pid and os.getpgid(child.pid) == child.pid
            assert child.poll() is None
        assert os.read(first_ready, 16) == b"ready\n"
        assert first.stdin is not None and second.stdin is not None
        first.stdin.write(b"3\n")
        first.stdin.close()
        assert first.wait(timeout=30) == 3 and first.returncode == 3
        with pytest.raises(subprocess.TimeoutExpired):
            second.wait(timeout=0.1)
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(timeout=30) == -signal.SIGTERM
        assert _gone(first.pid) and _gone(second.pid)  # reaped by the zygote: no zombies
    finally:
        os.close(first_ready)
        os.close(second_ready)


def test_closing_the_control_socket_stops_the_zygote_not_its_forks() -> None:
    process, control = _start()
    zygote = Zygote(process, control)
    assert zygote.wait_warm(60)
    child, ready = zygote.fork()
    try:
        control.shutdown(socket.SHUT_RDWR)  # what the server's exit (even killed) does to the zygote's channel
        assert process.wait(timeout=30) == 0
        assert zygote.wait_warm(0) is False and not zygote.alive()
        assert child.poll() is None and psutil.pid_exists(child.pid)  # the fork lives on
        with pytest.raises(ZygoteGone):
            zygote.fork()
        assert child.stdin is not None
        child.stdin.close()  # the standby's stdin closes: it exits, nobody can report its code
        assert child.wait(timeout=30) == EXIT_UNKNOWN
    finally:
        os.close(ready)
        process.stderr.close()  # type: ignore[union-attr]


def test_a_killed_zygote_leaves_a_handle_that_tells_alive_or_dead(zygote: Zygote) -> None:
    child, ready = zygote.fork()
    try:
        os.killpg(zygote.process.pid, signal.SIGKILL)
        assert zygote.process.wait(timeout=30) == -signal.SIGKILL
        assert not zygote.wait_warm(5)  # gone
        assert child.poll() is None
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == EXIT_UNKNOWN and child.poll() == EXIT_UNKNOWN
    finally:
        os.close(ready)


def test_the_zygote_refuses_bad_requests_and_stays_up() -> None:
    process, control = _start()
    try:
        assert control.recv(MAX_MESSAGE) == b"warm"
        control.send(b"fork")  # no descriptors
        assert control.recv(MAX_MESSAGE).startswith(b"error")
        control.send(b"x" * (MAX_MESSAGE * 4))  # longer than any message: truncated, refused
        assert control.recv(MAX_MESSAGE).startswith(b"error")
        stdin_read, stdin_write = os.pipe()
        ready_read, ready_write = os.pipe()
        socket.send_fds(control, [b"fork"], [stdin_read, ready_write])
        os.close(stdin_read)
        os.close(ready_write)
        message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
        assert message.startswith(b"forked ") and len(fds) == 1  # with its pidfd
        os.close(fds[0])
        assert os.read(ready_read, 16) == b"ready\n"
        os.close(stdin_write)  # unassigned: it exits 0, and the zygote says so
        assert control.recv(MAX_MESSAGE) == b"exit " + message.split()[1] + b" 0"
        os.close(ready_read)
    finally:
        control.close()
        assert process.wait(timeout=30) == 0
        process.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["ending", "native-ending"])
def test_a_thread_of_the_imports_that_ends_soon_is_waited_for(mode: str) -> None:
    """A Python thread the imports started and that ends shortly after (the AnyIO worker thread of the MLflow
    zygote's warm-up request, late on a busy machine) is waited for: the zygote then forks. So is an OS thread
    that `threading` does not list: a joined Python thread's OS thread lives a moment longer (in a slow phase of
    the machine, MLflow's zygote refused to fork one start in two on it)."""
    process, control = _start(mode)
    zygote = Zygote(process, control)
    try:
        assert zygote.wait_warm(60), process.stderr.read() if process.poll() is not None else b""  # type: ignore[union-attr]
        child, ready = zygote.fork()
        with os.fdopen(ready, "rb") as said:  # read before closing: the standby's `ready` into a closed pipe fails
            assert said.readline() == b"ready\n"
        assert child.stdin is not None
        child.stdin.write(b"3\n")
        child.stdin.close()
        assert child.wait(30) == 3
    finally:
        zygote.close()
        process.stderr.close()  # type: ignore[union-attr]


def test_a_zygote_with_another_thread_does_not_fork() -> None:
    process, control = _start("threaded")
    zygote = Zygote(process, control)
    try:
        assert not zygote.wait_warm(60)
        assert process.wait(timeout=30) == 2
        assert process.stderr is not None and b"other threads" in process.stderr.read()
    finally:
        zygote.close()
        process.stderr.close()  # type: ignore[union-attr]
