"""The tests' `mlyard` CLI calls as processes forked from one that has imported the CLI already.

A new `python -m mlyard ...` process spends 0.15-0.2 s of CPU starting Python and importing the CLI before it
does anything, and the suite makes hundreds of calls. Each call here is still a process of its own (its own
arguments, environment, working directory, stdout and stderr at the file descriptor level, exit code, the
interpreter's exit functions), forked from a multiprocessing fork server that imported `mlyard.cli.main` (and
what its commands import first) once per test worker. This module imports nothing else: the fork server loads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

PRELOAD = ["tests.cli_fork", "mlyard.cli.main", "mlyard.client", "mlyard.cli.output", "rich.console"]


def run(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """The body of `python -m mlyard ARGV` in this (forked) process, which ends with the CLI's exit code."""
    import atexit
    import traceback

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = [str(Path(sys.modules["mlyard.cli.main"].__file__ or "mlyard").parent.parent / "__main__.py"), *argv]
    code = 0
    try:
        from mlyard.cli.main import main

        main()
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def serve(path: str) -> None:
    """The fork server: import the CLI once, then per connection (a JSON request) fork a handler that forks the
    call's process, sends its pid, waits for it and sends its exit code. Ends when its stdin (the worker) closes."""
    import importlib
    import json
    import select
    import socket

    for name in PRELOAD[1:]:
        importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([server, sys.stdin], [], [], 1.0)
        with contextlib.suppress(ChildProcessError):  # reap the handlers (their CPU is counted to this process)
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-1, 0)
            os._exit(0)
        if server not in ready:
            continue
        conn, _ = server.accept()
        if os.fork() != 0:
            conn.close()
            continue
        # the handler
        server.close()
        with conn.makefile("rb") as request:
            call = json.loads(request.read())
        pid = os.fork()
        if pid == 0:
            conn.close()
            run(**call)
        conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        os._exit(0)
