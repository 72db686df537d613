"""The tests' `mlyard` CLI calls and `mlyard server` processes as processes forked from one that has imported the
CLI (and, for servers, the platform) already.

A new `python -m mlyard ...` process spends 0.15-0.2 s of CPU starting Python and importing the CLI before it
does anything, and the suite makes hundreds of calls; a new `mlyard server` 1.3-2 s importing FastAPI, SQLAlchemy
and the platform before it serves, and the suite starts some thirty. Each call or server here is still a process
of its own (its own arguments, environment, working directory, stdout and stderr at the file descriptor level,
session for a server, exit code and signals, the interpreter's exit: non-daemon threads joined, exit functions),
forked from a fork server that imported what its kind of process imports first (`PRELOAD`), once per test worker
and kind. The imports start no thread and open no socket, database or home (the fork server forks later). This
module imports nothing else: the fork server loads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

CLI_PRELOAD = ("mlyard.cli.main", "mlyard.client", "mlyard.cli.output", "rich.console")
# What `mlyard server` imports before it serves and at its first requests (`python -X importtime -m mlyard server`):
# the command's imports (src/mlyard/cli/main.py `server`), uvicorn's protocol, loop and lifespan, anyio's sockets and
# asyncio backend (imported by a sync endpoint's first call: /health's; 34 ms).
SERVER_PRELOAD = (
    *CLI_PRELOAD, "mlyard.settings", "mlyard.imports", "mlyard.registry.tracking_server", "uvicorn", "mlyard.app",
    "uvicorn.loops.asyncio", "uvicorn.protocols.http.h11_impl", "uvicorn.lifespan.on", "rich._emoji_codes",
    "encodings.unicode_escape", "anyio._core._sockets", "anyio._core._streams", "httpcore",
    "mlyard.registry.adapter", "anyio._backends._asyncio",
)  # fmt: skip
PRELOAD = {"cli": CLI_PRELOAD, "server": SERVER_PRELOAD}
LINGER = 10.0  # seconds a server fork server, told to end, waits for its servers' handlers


def run(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str, session: bool = False) -> None:
    """The body of `python -m mlyard ARGV` in this (forked) process, which ends with the CLI's exit code: its
    stdout and stderr are the files `out` and `err` (one file opened once when they are the same path: stderr
    to stdout; then appended to, as a server's log), in a session of its own with `session` (a server)."""
    import atexit
    import threading
    import traceback

    if session:
        os.setsid()
    os.environ.clear()  # wholly: the process and what it starts see the call's environment, not the fork server's
    os.environ.update(env)
    os.chdir(cwd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if out == err:
        target = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)
    else:
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
        threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter's exit: join non-daemon threads
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def serve(path: str, kind: str = "cli") -> None:
    """The fork server: import the CLI (`kind` "cli") or what `mlyard server` imports ("server") once, then per
    connection (a JSON request) fork a handler that forks the call's process, sends its pid, waits for it and sends
    its exit code. Ends when its stdin (the worker) closes: a "cli" one once its calls have ended, a "server" one
    once its servers' handlers have or after LINGER seconds (a server a test left running goes on, as a process
    the worker started would)."""
    import gc
    import importlib
    import json
    import select
    import socket
    import time

    gc.disable()  # as `mlyard.imports.collector_paused` in the server: the imports' objects frozen, never rescanned
    for name in PRELOAD[kind]:
        importlib.import_module(name)
    gc.freeze()
    gc.enable()
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
            # Reap the handlers (their processes' CPU is counted to this process, and so to the worker): a "cli"
            # one waits for its calls; a "server" one for at most LINGER seconds (a server left running goes on).
            deadline = time.monotonic() + LINGER
            with contextlib.suppress(ChildProcessError):
                while kind == "cli" or time.monotonic() < deadline:
                    if os.waitpid(-1, 0 if kind == "cli" else os.WNOHANG)[0] == 0:
                        time.sleep(0.05)
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
        with contextlib.suppress(OSError):  # the worker may have dropped its end (a process it no longer waits for)
            conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        os._exit(0)
