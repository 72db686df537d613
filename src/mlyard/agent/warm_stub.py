"""The program inside a warm step sandbox (mlyard.agent.warm); standard library only, started by path.

It pre-imports the modules named in argv[1] (comma-separated; those that fail are skipped), then reads
ONE request from stdin (JSON: argv, env, cwd, merge) and runs the step: fork+exec of argv with that
environment and working directory, stdin /dev/null, in this process group (the agent's kill of the
sandbox's group kills it), and exits with the step's exit code. It never runs step code itself.

While the step runs, `python` on the step's PATH is a shim (written to this sandbox's private /tmp) that
sends its arguments, environment, working directory and standard streams over a unix socket; this
program forks a child that applies them and runs the script / `-m module` / `-c code` as `__main__`, so
every Python process of the step starts from the same pristine, already-imported state. When a fork
could differ from a fresh interpreter in any way (an interpreter option other than -u -B -c -m, no
script, a PYTHON* variable, a locale, thread-count or library variable that differs from this
program's, a pre-imported top-level module that the new sys.path would find elsewhere, another
interpreter), the shim executes the real interpreter instead.
"""

import sys

if __name__ == "__main__":  # started by path (never imported): drop this file's folder from sys.path,
    del sys.path[0]  # so that the base sys.path is that of any `python script.py`

import atexit
import builtins
import contextlib
import gc
import importlib
import importlib.machinery
import io
import json
import marshal
import os
import select
import signal
import site
import socket
import subprocess
import sysconfig
import threading
import time
import types

HOME = sys.argv[2] if len(sys.argv) > 2 else "/tmp/.mlyard-warm"  # default: in the sandbox's private /tmp
# console scripts of this interpreter (`mlyard`, `mlflow`: next to it, their `#!` naming it) that get a shim too
SCRIPTS = [name for name in (sys.argv[3].split(",") if len(sys.argv) > 3 else []) if name and "/" not in name]
# where to say, once the step ended, how many Python processes it forked and how many went cold ("N M\n"): a pipe
# of the agent (mlyard.agent.warm), never inherited by the step's processes
REPORT_FD = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else -1
COUNTS = {"forked": 0, "cold": 0}
BIN = HOME + "/bin"
SOCKET = HOME + "/sock"
READY = b"ready\n"
DEBUG = "MLYARD_STEP_WARM_DEBUG"
PYTEST_PLUGINS: list[str] = []
WAKE: list[int] = []  # the self-pipe of SIGCHLD
MAX_REQUEST = 8 << 20
MAX_MESSAGE = 8 << 20
MAX_LISTED = 20000  # entries of a new sys.path folder looked at for shadowing modules
MAX_SCRIPTS = 256
MAX_SHEBANG = 512
MODULE_SUFFIXES = frozenset(importlib.machinery.all_suffixes())  # what makes a file importable
BASE_PATH = list(sys.path)
BASE_ENV = dict(os.environ)
UNBUFFERED = bool(BASE_ENV.get("PYTHONUNBUFFERED"))  # how this interpreter's stdio was made (it has no -u)
# Variables that change what an interpreter or a pre-imported library does at start-up or import time:
# a request whose value differs from this program's gets the real interpreter.
# Also every variable the pre-imports read (READ, recorded while importing), but for those whose uses the
# fork recomputes (HOME: FIXED_UP below) or that nothing caches (PATH).
SENSITIVE = ("LANG", "LC_", "TZ", "OMP_", "OPENBLAS_", "GOTO_", "MKL_", "KMP_", "BLIS_", "VECLIB_", "NUMEXPR_",
             "NPY_", "NUMPY_", "SCIPY_", "SKLEARN_", "PANDAS_", "JOBLIB_", "MPL", "PYARROW_", "ARROW_")
READ: set[str] = set()
COPIED: list[str] = []  # the modules that copied (iterated) the whole environment while being imported
REASON = [""]  # why the last request gets the real interpreter (MLYARD_STEP_WARM_DEBUG=1 shows it)
NOT_CACHED = {"HOME", "PATH"}
# PYTHON* variables a fork reproduces (the flags they set are compared), or that no interpreter reads
# (PYTHONLOCATION: the `pythonLocation` variable of UsePythonVersion@0); any other one means cold.
PYTHON_OK = ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONBREAKPOINT", "PYTHONLOCATION")
SHIM = """#!{python} -IS
import marshal, os, signal, socket, sys
BIN = {bin!r}
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
real = None
for folder in os.environ.get("PATH", "").split(os.pathsep):
    if os.path.abspath(folder or ".") != BIN:
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            real = candidate
            break
if real is None:
    sys.stderr.write(name + ": command not found\\n")
    os._exit(127)
line = b""
try:
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    link.connect({socket!r})
    data = marshal.dumps({{"exe": os.path.abspath(real), "name": name, "args": args, "env": dict(os.environ),
                          "cwd": os.getcwd()}})
    socket.send_fds(link, [len(data).to_bytes(4, "big") + data], [0, 1, 2])
    answers = link.makefile("rb")
    line = answers.readline()
except (OSError, ValueError):
    pass
if not line.startswith(b"pid "):
    if os.environ.get("MLYARD_STEP_WARM_DEBUG"):
        sys.stderr.write("mlyard: cold python " + line.decode(errors="replace").strip() + "\\n")
        sys.stderr.flush()
    os.execv(real, [real, *args])
child = int(line[4:])


def forward(signum, frame):
    try:
        os.kill(child, signum)
    except OSError:
        pass


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(signum, forward)
line = answers.readline()
code = int(line[5:]) if line.startswith(b"exit ") else 1
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
os._exit(code)
"""


def preload(names):
    """Import `names` with this program's output going nowhere (it would land in the step's log)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    environ = type(os.environ)
    get, contains, iterate = environ.__getitem__, environ.__contains__, environ.__iter__

    def recorded_get(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, str):  # os.environb's keys are bytes
            READ.add(key)
        return get(self, key)

    def recorded_contains(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, str):
            READ.add(key)
        return contains(self, key)

    def recorded_iter(self):  # type: ignore[no-untyped-def]
        COPIED.append(importing[0])  # a copy of the whole environment (plumbum's `local.env`)
        return iterate(self)

    importing = [""]
    environ.__getitem__, environ.__contains__ = recorded_get, recorded_contains  # type: ignore[method-assign]
    environ.__iter__ = recorded_iter  # type: ignore[method-assign]
    # The cyclic collector is off meanwhile and what the imports made is frozen after (as mlyard.imports does:
    # a fifth of their CPU); the forks start with it on again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            if name:
                importing[0] = name
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
        environ.__getitem__, environ.__contains__, environ.__iter__ = get, contains, iterate  # type: ignore[method-assign]
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


def pytest_plugin_modules():
    """The pre-imported top-level modules of distributions that hold a pytest plugin (anyio, imported
    by MLflow): pytest marks them for assertion rewriting and warns that they were imported first."""
    try:
        from importlib.metadata import entry_points

        names = set()
        for entry in entry_points(group="pytest11"):
            for file in (entry.dist.files if entry.dist is not None else None) or ():
                parts = file.parts
                if parts and not parts[0].endswith((".dist-info", ".egg-info", "..")):
                    names.add(parts[0].partition(".")[0])
        return sorted(name for name in names if name in sys.modules)
    except Exception:
        return []


def _not_rewritten(names):
    """In a fork: what a fresh interpreter would import after pytest installed its rewriting hook is
    already imported here; say so in the way pytest reads (its docstring), instead of a warning that a
    fresh interpreter does not print (the library's own asserts are not test code either way)."""
    for name in names:
        module = sys.modules.get(name)
        if module is not None and "PYTEST_DONT_REWRITE" not in (module.__doc__ or ""):
            with contextlib.suppress(AttributeError, TypeError):
                module.__doc__ = (module.__doc__ or "") + "\n\nPYTEST_DONT_REWRITE"


def install_shims():
    os.makedirs(BIN, mode=0o700, exist_ok=True)
    text = SHIM.format(python=sys.executable, bin=BIN, socket=SOCKET)
    major, minor = sys.version_info[:2]
    for name in ("python", f"python{major}", f"python{major}.{minor}", *SCRIPTS[:MAX_SCRIPTS]):
        path = os.path.join(BIN, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o755)


def same_interpreter(exe):
    """Whether `exe` is this interpreter in this installation (a venv's python, python3: same prefix)."""
    try:
        return (os.path.dirname(os.path.abspath(exe)) == os.path.dirname(sys.executable)
                and os.path.realpath(exe) == os.path.realpath(sys.executable))  # fmt: skip
    except OSError:
        return False


def script_interpreter(exe):
    """The interpreter of a console script whose `#!` line names this interpreter with no option (None
    otherwise): the script then runs as `python SCRIPT ARGS` would, which a fork can reproduce."""
    if os.path.basename(exe) not in SCRIPTS:
        return None
    try:
        with open(exe, "rb") as handle:
            first = handle.read(MAX_SHEBANG).split(b"\n", 1)[0]
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if len(words) == 1 and same_interpreter(words[0]) else None


def _env_difference(env):
    """The first variable that makes a fork differ from a fresh interpreter ('' when none); when a
    pre-imported module copied the whole environment, every request differs (the copy would be this
    program's environment, not the step's)."""
    if COPIED:
        return f"(all: {COPIED[0]} copied the environment when imported)"
    for key in env:
        if key.startswith("PYTHON") and key not in PYTHON_OK:
            return key
    for key in sorted(set(env) | set(BASE_ENV) | READ):
        if (key.startswith(SENSITIVE) or key in READ) and key not in NOT_CACHED and env.get(key) != BASE_ENV.get(key):
            return key
    return ""


def _options(args):
    """(mode, target, rest, unbuffered, no_bytecode) of an interpreter command line; None: not reproducible."""
    unbuffered = no_bytecode = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            return None
        for position, letter in enumerate(arg[1:], start=1):
            if letter == "u":
                unbuffered = True
            elif letter == "B":
                no_bytecode = True
            elif letter in "cm":
                value = arg[position + 1 :]
                rest = args[index + 1 :]
                if not value:
                    if not rest:
                        return None
                    value, rest = rest[0], rest[1:]
                return letter, value, rest, unbuffered, no_bytecode
            else:
                return None
        index += 1
    if index >= len(args) or args[index] == "-":
        return None  # the REPL, or a program read from stdin
    return "script", args[index], args[index + 1 :], unbuffered, no_bytecode


def _pythonpath(env, cwd):
    value = env.get("PYTHONPATH")
    return [os.path.normpath(os.path.join(cwd, entry)) for entry in value.split(os.pathsep)] if value else []


def _shadowed(folder, names):
    """Whether `folder` holds something importable under one of `names`: a folder of that name (a package or a
    namespace portion), or a file named so with one of the interpreter's module suffixes (`.py`, `.pyc`,
    `.cpython-311-x86_64-linux-gnu.so`...). Other files are not importable: the console script `mlflow` next
    to the interpreter, or pytest's `py.test` beside the pre-imported module `py` (which sent every console
    script of the interpreter, the creator's `mlyard`, to the real interpreter)."""
    try:
        with os.scandir(folder or ".") as entries:
            for count, entry in enumerate(entries):
                if count > MAX_LISTED:
                    return True
                top, dot, suffix = entry.name.partition(".")
                if top in names and (dot + suffix in MODULE_SUFFIXES if dot else entry.is_dir()):
                    return True
    except OSError:
        return False
    return False


def plan(request):
    """How a warm child runs a shim's request: a dict, or None when only the real interpreter can."""
    exe, args, env, cwd = request["exe"], request["args"], request["env"], request["cwd"]
    script = None
    if not same_interpreter(exe):  # a console script of this interpreter: `python SCRIPT ARGS`
        interpreter = script_interpreter(exe)
        if interpreter is not None:
            script, exe, args = exe, interpreter, ["--", exe, *args]
    REASON[0] = "another interpreter" if not same_interpreter(exe) else "no working directory"
    if not same_interpreter(exe) or not os.path.isdir(cwd):
        return None
    variable = _env_difference(env)
    REASON[0] = f"the variable {variable}"
    if variable:
        return None
    options = _options(args)
    REASON[0] = "an interpreter option or no script"
    if options is None:
        return None
    REASON[0] = "PYTHONUNBUFFERED, PYTHONDONTWRITEBYTECODE, a user site folder, the script or a module's name"
    mode, target, rest, unbuffered, no_bytecode = options
    if bool(unbuffered or env.get("PYTHONUNBUFFERED")) != UNBUFFERED:
        return None
    no_bytecode = bool(no_bytecode or env.get("PYTHONDONTWRITEBYTECODE"))
    if sys.flags.dont_write_bytecode and not no_bytecode:
        return None  # the fork could not write bytecode again; the other way round is sys.dont_write_bytecode
    if site.ENABLE_USER_SITE and env.get("HOME"):
        user_site = os.path.join(env["HOME"], ".local", "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                                 "site-packages")  # fmt: skip
        if os.path.isdir(user_site):
            return None
    if mode == "script":
        file = os.path.join(cwd, target)
        if not os.path.isfile(file) or not (target.endswith(".py") or target == script):
            return None  # a folder or zip with __main__.py, a .pyc, a missing file: the real error message
        first = os.path.dirname(os.path.realpath(file))
        argv = [target, *rest]
    elif mode == "m":
        first, argv = cwd, ["-m", *rest]
    else:
        first, argv = "", ["-c", *rest]
    path = [first]
    for entry in [*_pythonpath(env, cwd), *BASE_PATH]:
        if entry not in path[1:]:
            path.append(entry)
    names = {name.partition(".")[0] for name in sys.modules if name != "__main__"}
    for entry in dict.fromkeys(path):
        if (entry == "" or entry not in BASE_PATH) and _shadowed(os.path.join(cwd, entry), names):
            return None
    orig = [exe, script, *args[2:]] if script is not None else [request["name"], *args]
    return {"mode": mode, "target": target, "argv": argv, "path": path, "env": env, "cwd": cwd, "exe": exe,
            "orig": orig, "no_bytecode": no_bytecode}  # fmt: skip


def _stdio(fd, write, template):
    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    raw.name = template.name
    unbuffered = write and UNBUFFERED
    buffer = raw if unbuffered else (io.BufferedWriter(raw) if write else io.BufferedReader(raw))
    line_buffering = not UNBUFFERED and (raw.isatty() or fd == 2)
    stream = io.TextIOWrapper(buffer, encoding=template.encoding, errors=template.errors, newline="\n",
                              line_buffering=line_buffering, write_through=bool(unbuffered))  # fmt: skip
    stream.mode = "w" if write else "r"
    return stream


def _fix_up_home():
    """What the interpreter and the pre-imports derived from HOME at start-up, derived again from the
    step's HOME (the user site folder; MLflow's Databricks CLI configuration path)."""
    site.USER_BASE = site._getuserbase()
    site.USER_SITE = site._get_path(site.USER_BASE)
    variables = getattr(sysconfig, "_CONFIG_VARS", None)
    if variables:
        variables["userbase"] = site.USER_BASE
    provider = sys.modules.get("mlflow.legacy_databricks_cli.configure.provider")
    if provider is not None and hasattr(provider, "_home"):
        provider._home = os.path.expanduser("~")


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _run(job):
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    if job["mode"] == "m":
        import runpy

        runpy._run_module_as_main(job["target"], alter_argv=True)
        return
    if job["mode"] == "c":
        main.__loader__ = importlib.machinery.BuiltinImporter
        code = compile(job["target"], "<string>", "exec")
    else:
        script = os.path.abspath(job["target"])  # as the interpreter makes it (3.9+)
        main.__file__ = script
        main.__cached__ = None
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
        with io.open_code(script) as handle:
            code = compile(handle.read(), script, "exec")
    exec(code, main.__dict__)


def warm_child(job, fds, keep_closed):
    """In a fresh fork: become the requested interpreter process and run it to its end (never returns)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in keep_closed:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        time.tzset()
        _fix_up_home()
        _not_rewritten(PYTEST_PLUGINS)
        sys.argv = job["argv"]
        sys.orig_argv = job["orig"]
        sys.executable = job["exe"]
        sys.path[:] = job["path"]
        sys.dont_write_bytecode = job["no_bytecode"] or sys.dont_write_bytecode  # -B, PYTHONDONTWRITEBYTECODE
        importlib.invalidate_caches()
        for fd, name in enumerate(("stdin", "stdout", "stderr")):
            stream = _stdio(fd, fd > 0, getattr(sys, f"__{name}__"))
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)
        random = sys.modules.get("numpy.random")
        if random is not None:
            random.seed()  # a fresh process draws a fresh seed; a fork would repeat the parent's
    except BaseException:
        os._exit(1)
    try:
        _run(job)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        trace = exc.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_filename == __file__:
            trace = trace.tb_next
        exc.__traceback__ = trace  # the interpreter shows the exception's own traceback
        sys.excepthook(type(exc), exc, trace)
        code = 1
        if isinstance(exc, KeyboardInterrupt):
            code = -signal.SIGINT
    _finish(code)


def _finish(code):
    with contextlib.suppress(BaseException):
        threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = 120
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def _receive(conn):
    conn.settimeout(10)
    message, fds, _flags, _address = socket.recv_fds(conn, 1 << 16, 3)
    try:
        if len(message) < 4:
            raise ValueError("short message")
        size = int.from_bytes(message[:4], "big")
        if size > MAX_MESSAGE:
            raise ValueError("message too large")
        data = bytearray(message[4:])
        while len(data) < size:
            chunk = conn.recv(min(1 << 20, size - len(data)))
            if not chunk:
                raise ValueError("truncated message")
            data += chunk
        if len(fds) != 3:
            raise ValueError("three file descriptors expected")
        return marshal.loads(bytes(data)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def serve(step, listener, wake):
    """Answer shims until the step's process ends; returns its exit code (negative: killed by a signal)."""
    children = {}  # pid -> the shim's connection
    step_code = None
    while step_code is None:
        ready, _, _ = select.select([listener, wake], [], [])
        if wake in ready:
            while True:
                try:
                    if not os.read(wake, 512):
                        break
                except BlockingIOError:
                    break
        if listener in ready:
            try:
                conn, _address = listener.accept()
            except OSError:
                conn = None
            if conn is not None:
                _answer(conn, listener, wake, children)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            if pid == step.pid:
                step_code = code
            elif pid in children:
                conn = children.pop(pid)
                with contextlib.suppress(OSError):
                    conn.sendall(f"exit {code}\n".encode())
                conn.close()
    return step_code


def _answer(conn, listener, wake, children):
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, EOFError, TypeError):
        conn.close()
        return
    REASON[0] = "an unreadable request"
    try:
        job = plan(request) if isinstance(request, dict) else None
    except Exception as exc:
        REASON[0] = f"{type(exc).__name__}: {exc}"
        job = None
    if job is None:
        COUNTS["cold"] += 1
        for fd in fds:
            os.close(fd)
        why = f" ({REASON[0]})" if isinstance(request, dict) and request.get("env", {}).get(DEBUG) else ""
        with contextlib.suppress(OSError):
            conn.sendall(f"cold{why}\n".encode())
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        closed = [listener.fileno(), *WAKE, conn.fileno(), *(other.fileno() for other in children.values()),
                  *([REPORT_FD] if REPORT_FD >= 0 else [])]  # fmt: skip
        warm_child(job, fds, closed)
    COUNTS["forked"] += 1
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {pid}\n".encode())
    children[pid] = conn


def report():
    """Say on REPORT_FD how many of the step's Python processes were forked and how many went cold."""
    if REPORT_FD >= 0:
        with contextlib.suppress(OSError):
            os.write(REPORT_FD, f"{COUNTS['forked']} {COUNTS['cold']}\n".encode())
            os.close(REPORT_FD)


def main():
    if REPORT_FD >= 0:
        os.set_inheritable(REPORT_FD, False)  # the step's own processes (subprocess, exec) never get it
    home = os.environ.get("HOME", "")
    if home.startswith(HOME + "/"):
        os.makedirs(home, mode=0o700, exist_ok=True)
    preload(sys.argv[1].split(",") if len(sys.argv) > 1 else [])
    PYTEST_PLUGINS[:] = pytest_plugin_modules()
    install_shims()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET)
    listener.listen(64)
    os.write(2, READY)  # the agent reads it before it gives this sandbox a step
    request = json.loads(sys.stdin.buffer.read(MAX_REQUEST))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if request.get("merge"):
        os.dup2(1, 2)
    env = dict(request["env"])
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    argv, cwd = list(request["argv"]), request["cwd"]
    direct = None
    if argv and same_interpreter(argv[0]):  # a Python task whose interpreter is this one: a warm child
        direct = plan({"exe": argv[0], "name": os.path.basename(argv[0]), "args": argv[1:], "env": env, "cwd": cwd})
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    WAKE[:] = [wake_read, wake_write]
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    if direct is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            warm_child(direct, [0, 1, 2], [listener.fileno(), *WAKE, *([REPORT_FD] if REPORT_FD >= 0 else [])])
        COUNTS["forked"] += 1
        step = types.SimpleNamespace(pid=pid)
    else:
        try:
            step = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
        except OSError as exc:
            print(f"{argv[0] if argv else 'the step'}: {exc}", file=sys.stderr, flush=True)
            os._exit(127)
    code = serve(step, listener, wake_read)
    listener.close()
    report()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


if __name__ == "__main__":
    main()
