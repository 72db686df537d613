"""Warm step sandboxes: Python's imports paid before the step that needs them starts.

A warm sandbox is a step sandbox (mlyard.sandbox) started before its step is known, with the cold
sandbox's options but for one: it binds the agent's *slot* directory instead of a job's work directory.
The agent creates each job's work directory inside the slot, so a warm sandbox sees exactly what a cold
one sees (the slot holds only that one job's directory; when the job ends its directory is moved out of
the slot at once). Inside runs :mod:`mlyard.agent.warm_stub`, which pre-imports the ML stack and waits
for ONE step; `python` invocations of that step are forks of the pre-imported interpreter (see the
stub). A warm sandbox serves one step and is never reused; a sandbox that waited through a job without
serving a step ran no code of it and serves the next job.

`MLYARD_STEP_WARM` sets how many wait per agent (default DEFAULT_SIZE; 0: off);
`MLYARD_STEP_WARM_MODULES` the modules they pre-import (comma-separated; default DEFAULT_MODULES,
those not installed are skipped). Only sandboxed agents use them (`--unsandboxed-steps`: none).

A sandbox's imports take a core for seconds, so they run only on a core the rest of the machine leaves
idle (CoreGauge, from /proc/stat): a sandbox starts after a second with a core idle, and its imports are
paused (SIGSTOP) while the machine's other work needs the cores, and resumed once a core is idle again.
`MLYARD_STEP_WARM_IDLE=0` starts them at once (the tests' agents).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlyard.sandbox import Sandbox, passed_environment

log = logging.getLogger("mlyard.agent")
SIZE_ENV = "MLYARD_STEP_WARM"
MODULES_ENV = "MLYARD_STEP_WARM_MODULES"
IDLE_ENV = "MLYARD_STEP_WARM_IDLE"
# One per agent (the template's jobs run one heavy Python step each); their imports wait for an idle core
# (CoreGauge), so that they do not slow the steps and the server down (docs/agent.md, "Warm step sandboxes").
DEFAULT_SIZE = 1
# Cores the machine's other work left idle (over SAMPLE_SECONDS) for a sandbox to start (QUIET_SAMPLES
# samples in a row) or resume its imports (0.6 of a core; on a 1-core machine 0.9 of it), and below which its
# imports are paused. On 2 cores one running step (with the server's and its client's share) leaves 0.7-0.9
# idle: the next job's sandbox imports on that core meanwhile; two busy cores pause it.
START_IDLE_CORES = 0.6
START_IDLE_SHARE = 0.9
PAUSE_IDLE_CORES = 0.25
SAMPLE_SECONDS = 0.5
QUIET_SAMPLES = 2
PROC_STAT = Path("/proc/stat")
MAX_SIZE = 8
MAX_MODULES = 64
# the ML stack mlyard ships, and what the project template imports of it
# and what the project creator's step (`mlyard infra create-project`) imports: mlyard's CLI and copier's
# dependencies, not copier: it imports plumbum, which copies the whole environment when imported (a fork
# would then run git with the sandbox's environment; warm_stub sends every python cold after such a copy).
# 0.3 s of CPU more per sandbox; the step's `import copier` is then 0.16-0.21 s (0.44-0.69 s cold; a slow phase).
# scipy.special first and skops.io (MLflow's format for scikit-learn models, which the template's steps log and load)
# last of the stack: skops, when imported, searches the loaded modules in import order for each scipy.special
# function, a search that stops early when scipy.special comes first (docs/template.md).
DEFAULT_MODULES = ("scipy.special", "numpy", "pandas", "sklearn", "mlflow", "sklearn.linear_model", "sklearn.metrics",
                   "sklearn.pipeline", "sklearn.preprocessing", "sklearn.model_selection", "mlflow.sklearn",
                   "skops.io", "mlyard.cli.main", "mlyard.cli.infra", "mlyard.creator", "mlyard.scaffold.render",
                   "mlyard.git.remote", "questionary", "jinja2", "pydantic", "yaml")  # fmt: skip
STUB = Path(__file__).with_name("warm_stub.py")
STEP_VARIABLES = {"TF_BUILD": "True"}  # every step has it (mlyard.agent.environment); MLflow reads it at import
SLOT_PREFIX = "slot-"  # no leading dot: tools skip hidden folders (pytest's norecursedirs, linters)
STATUS_FILE = ".warm-ready"  # in the work root (hidden from steps): how many sandboxes are ready
STUB_HOME = "/tmp/.mlyard-warm"  # the stub's shims and socket (warm_stub.HOME), in the sandbox's private /tmp
WARM_HOME = STUB_HOME + "/home"  # HOME of the stub
READY = b"ready\n"  # what the stub writes on stderr once its imports are done (warm_stub.READY)
MAX_SCRIPT_BYTES = 1 << 20
PYTHON_WORD = re.compile(r"\bpython3?\b")
INVOCATION = re.compile(r"\bpython3?(?:\.\d+)?[ \t]+((?:-[A-Za-z]+[ \t]+)*)(\S+)")  # options, then the target
IMPORT = re.compile(r"^[ \t]*(?:import|from)[ \t]+([A-Za-z_][A-Za-z_0-9]*)", re.MULTILINE)
# where a shell command starts, the words before a command's name (keywords, variable assignments)
COMMAND_SPLIT = re.compile(r"[;&|(){}`\n]|\$\(")
SHELL_KEYWORDS = frozenset({"if", "then", "elif", "else", "do", "while", "until", "exec", "time", "command", "!"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MAX_SCRIPTS = 256  # console scripts given a shim
MAX_LISTED = 4096  # entries of the interpreter's folder looked at for console scripts
MAX_SHEBANG = 512
_MARK = "MLYARD_AGENT_MARK"


def warm_size(environ: dict[str, str] | None = None) -> int:
    """How many warm sandboxes an agent keeps (MLYARD_STEP_WARM, 0..MAX_SIZE; bad values: the default)."""
    value = (os.environ if environ is None else environ).get(SIZE_ENV, "").strip()
    if not value:
        return DEFAULT_SIZE
    try:
        return max(0, min(int(value), MAX_SIZE))
    except ValueError:
        log.warning("%s=%r is not a whole number: using %d", SIZE_ENV, value, DEFAULT_SIZE)
        return DEFAULT_SIZE


def warm_modules(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The modules to pre-import that are installed (MLYARD_STEP_WARM_MODULES, else DEFAULT_MODULES)."""
    value = (os.environ if environ is None else environ).get(MODULES_ENV)
    names = [name.strip() for name in value.split(",")] if value is not None else list(DEFAULT_MODULES)
    found = []
    for name in names[:MAX_MODULES]:
        if not name or not all(part.isidentifier() for part in name.split(".")):
            continue
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(name.split(".")[0]) is not None:
                found.append(name)
    return tuple(found)


def invokes_python(text: str) -> bool:
    """Whether a script's text runs python (the only steps a warm sandbox can help)."""
    return PYTHON_WORD.search(text) is not None


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_SCRIPT_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def imports_any(path: Path, modules: Sequence[str]) -> bool:
    """Whether a Python file imports one of `modules` (their top-level packages) itself."""
    tops = {name.split(".")[0] for name in modules}
    return any(match.group(1) in tops for match in IMPORT.finditer(_read(path)))


def uses_warm(text: str, cwd: Path, modules: Sequence[str]) -> bool:
    """Whether a step script runs Python that a warm sandbox speeds up: `python -m ...`, `python -c` code
    naming a pre-imported module, or a script that imports one. A step whose Python imports none of
    them (the template's `python mlops/tools.py`, `notify.py`) runs cold: a warm sandbox would be
    spent (and re-imported) for nothing."""
    tops = {name.split(".")[0] for name in modules}
    for match in INVOCATION.finditer(text[:MAX_SCRIPT_BYTES]):
        options, target = match.group(1).split(), match.group(2).strip("\"'")
        if "-m" in options or target == "-m":
            return True
        if "-c" in options or target == "-c":
            if any(re.search(rf"\b{re.escape(top)}\b", text) for top in tops):
                return True
        elif target.endswith(".py") and imports_any(cwd / target, modules):
            return True
    return False


@functools.lru_cache(maxsize=1)
def console_scripts() -> dict[str, Path]:
    """The console scripts next to this interpreter that run it (their `#!` line names it, with no option):
    `mlyard`, `mlflow`... A fork of a warm sandbox can run them as `python SCRIPT ARGS` (warm_stub)."""
    folder = Path(sys.executable).parent
    found: dict[str, Path] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)[:MAX_LISTED]
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("python") or not entry.is_file() or len(found) >= MAX_SCRIPTS:
            continue
        try:
            with open(entry.path, "rb") as handle:
                first = handle.read(MAX_SHEBANG).split(b"\n", 1)[0]
        except OSError:
            continue
        words = first[2:].decode("utf-8", "replace").split() if first.startswith(b"#!") else []
        if len(words) == 1 and _same_interpreter(words[0]):
            found[entry.name] = Path(entry.path)
    return found


def _same_interpreter(exe: str) -> bool:
    """As warm_stub.same_interpreter: this interpreter, in this installation (same folder)."""
    try:
        return (os.path.dirname(os.path.abspath(exe)) == os.path.dirname(sys.executable)
                and os.path.realpath(exe) == os.path.realpath(sys.executable))  # fmt: skip
    except OSError:
        return False


def scripts_importing(modules: Sequence[str]) -> tuple[str, ...]:
    """The console scripts of this interpreter that import one of `modules` (`mlyard`: mlyard.cli.main)."""
    return tuple(name for name, path in console_scripts().items() if imports_any(path, modules))


def runs_script(text: str, scripts: Sequence[str]) -> bool:
    """Whether a step script runs one of `scripts` as a command (`mlyard infra create-project ...`)."""
    if not scripts:
        return False
    names = set(scripts)
    for part in COMMAND_SPLIT.split(text[:MAX_SCRIPT_BYTES]):
        words = part.split()
        while words and (words[0] in SHELL_KEYWORDS or ASSIGNMENT.match(words[0])):
            words.pop(0)
        if words and words[0] in names:
            return True
    return False


def waits_for_idle(environ: dict[str, str] | None = None) -> bool:
    """Whether the sandboxes' imports wait for an idle core (MLYARD_STEP_WARM_IDLE, default yes; 0: no)."""
    return (os.environ if environ is None else environ).get(IDLE_ENV, "").strip() != "0"


def _cpu_ticks(stat: Path) -> tuple[int, int, int] | None:
    """(busy, total, cores) from /proc/stat's `cpu` lines (clock ticks since boot); None if unreadable."""
    try:
        with stat.open("rb") as handle:
            text = handle.read(1 << 16).decode("ascii", "replace")
    except OSError:
        return None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("cpu "):
        return None
    try:
        fields = [int(value) for value in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    except ValueError:
        return None
    if len(fields) < 5:
        return None
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields), max(cores, 1)


class CoreGauge:
    """How many cores the machine's other work left idle between two samples of /proc/stat: the CPU
    time of the processes given as our own (a warm sandbox's imports) counts as idle."""

    def __init__(self, stat: Path = PROC_STAT) -> None:
        self.stat = stat
        self._last = _cpu_ticks(stat)
        self.cores = self._last[2] if self._last is not None else os.cpu_count() or 1
        self._clock = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def reset(self) -> None:
        self._last = _cpu_ticks(self.stat)

    def idle(self, own_seconds: float = 0.0) -> float | None:
        """Idle cores since the last sample (the machine's cores when idle); None when unknown (no
        /proc/stat, or no time passed): callers then do not wait."""
        now, last = _cpu_ticks(self.stat), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        cores = self.cores = now[2]
        elapsed = (now[1] - last[1]) / cores  # ticks of one core
        busy = cores * (now[0] - last[0]) / (now[1] - last[1])
        own = own_seconds * self._clock / elapsed
        return cores - max(0.0, busy - own)


def _cpu_seconds(processes: list[Any]) -> float:
    """CPU seconds (user + system) used so far by the still-running `processes` (psutil.Process)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(Exception):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class WarmPool:
    """The warm sandboxes of one agent, all on its one slot (an agent runs one job at a time)."""

    def __init__(self, sandbox: Sandbox, work_root: Path, size: int, modules: Sequence[str],
                 gauge: CoreGauge | None = None, variables: dict[str, str] | None = None) -> None:  # fmt: skip
        self.sandbox = sandbox
        self.work_root = work_root.resolve()
        self.size = size
        self.modules = tuple(modules)
        self.slot = self.work_root / f"{SLOT_PREFIX}{uuid.uuid4().hex[:12]}"
        self._ready: list[subprocess.Popen[bytes]] = []
        self._warm: set[int] = set()  # pids of the waiting sandboxes whose imports are done
        self._held = False  # a job runs: no sandbox starts
        self._wake = threading.Event()
        self._halt = threading.Event()  # set by stop()
        self._lock = threading.Lock()
        self._stopped = False
        self.gauge = gauge  # None: sandboxes start at once, never paused
        # what every command given to them has in its environment and the imports may read (default: a step's)
        self.variables = STEP_VARIABLES if variables is None else dict(variables)
        self.scripts = scripts_importing(self.modules)  # console scripts whose commands run warm too
        self._paused: int | None = None  # the pid of the importing sandbox while it is stopped (SIGSTOP)
        self.sample_seconds = SAMPLE_SECONDS
        self.started = 0  # sandboxes started so far

    @classmethod
    def create(cls, sandbox: Sandbox, work_root: Path, variables: dict[str, str] | None = None) -> WarmPool | None:
        """The pool the settings ask for, started; None when off or when steps run unsandboxed."""
        size = warm_size()
        if size == 0 or not sandbox.enabled:
            return None
        gauge = CoreGauge() if waits_for_idle() else None
        pool = cls(sandbox.hiding(work_root), work_root, size, warm_modules(), gauge, variables)
        pool.start()
        return pool

    def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        for stale in sorted(self.work_root.glob(SLOT_PREFIX + "*"))[:16]:  # a previous agent process's
            shutil.rmtree(stale, ignore_errors=True)
        self.slot.mkdir()
        threading.Thread(target=self._fill, name="mlyard-warm-sandboxes", daemon=True).start()
        log.info("warm step sandboxes: %d waiting, %s (%s=0 turns them off), pre-importing %s", self.size,
                 "filled on idle cores" if self.gauge is not None else "filled at once", SIZE_ENV,
                 ", ".join(self.modules) or "nothing")  # fmt: skip

    def _fill(self) -> None:
        """Keep `size` sandboxes waiting, starting one at a time (each import takes a core for seconds),
        none while a job runs (its steps need the cores; the job's used sandboxes are replaced when it
        ends), and only when a core is idle (see _quiet and _follow_imports)."""
        quiet = 0
        while True:
            with self._lock:
                if self._stopped:
                    return
                waiting = all(proc.pid in self._warm for proc in self._ready)
                wanted = not self._held and len(self._ready) < self.size and waiting
            if not wanted:
                quiet = 0
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            quiet = quiet + 1 if self._quiet() else 0
            if quiet < QUIET_SAMPLES:
                continue
            quiet = 0
            with self._lock:
                proc = None
                if not self._stopped and not self._held and len(self._ready) < self.size:
                    try:
                        proc = self._spawn()
                        self._ready.append(proc)
                        self.started += 1
                    except OSError as exc:
                        log.warning("a warm step sandbox could not start: %s", exc)
            if proc is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._follow_imports(proc)
            self._publish()

    def _quiet(self) -> bool:
        """Whether a core stayed idle for the next SAMPLE_SECONDS (at once True without a gauge)."""
        if self.gauge is None:
            return True
        self.gauge.reset()
        self._halt.wait(self.sample_seconds)  # not _wake: the sample must span its time
        idle = self.gauge.idle()
        return idle is None or idle >= self._start_idle()

    def _start_idle(self) -> float:
        cores = self.gauge.cores if self.gauge is not None else 1
        return min(START_IDLE_CORES, START_IDLE_SHARE * cores)

    def _follow_imports(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the sandbox's imports are done: pause them while the rest of the machine leaves less than
        PAUSE_IDLE_CORES idle, resume them when a core is idle again (_start_idle)."""
        stream = proc.stderr
        assert stream is not None
        tree: list[Any] = []
        own = 0.0
        if self.gauge is not None:
            self.gauge.reset()
        try:
            while not self._stopped and proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    select.select([stream], [], [], self.sample_seconds)
                with self._lock:
                    if proc not in self._ready or self._check(proc, 0):
                        return
                if self.gauge is None:
                    continue
                if len(tree) < 3:  # bwrap, its child in the new PID namespace, the stub
                    tree = _process_tree(proc.pid)
                used = _cpu_seconds(tree)
                idle = self.gauge.idle(max(0.0, used - own))
                own = used
                if idle is None:
                    continue
                with self._lock:
                    if proc not in self._ready or proc.pid in self._warm:
                        return
                    if self._paused is None and idle < PAUSE_IDLE_CORES:
                        self._paused = proc.pid if _signal_group(proc, signal.SIGSTOP) else None
                        log.debug("warm sandbox imports paused: %.2f cores idle", idle)
                    elif self._paused is not None and idle >= self._start_idle():
                        _signal_group(proc, signal.SIGCONT)
                        self._paused = None
                        log.debug("warm sandbox imports resumed: %.2f cores idle", idle)
        finally:
            with self._lock:
                if self._paused == proc.pid:
                    _signal_group(proc, signal.SIGCONT)
                    self._paused = None

    def hold(self) -> None:
        """A job starts: no sandbox starts until release()."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        """The job ended: replace the sandboxes it used."""
        with self._lock:
            self._held = False
        self._wake.set()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # as a step's (self.variables: TF_BUILD, which MLflow reads at import), but HOME: the sandbox's own
        # /tmp (what the imports write there, e.g. MLflow's telemetry id, stays in this sandbox)
        env = {**passed_environment(), "HOME": WARM_HOME, "PYTHONUNBUFFERED": "1", **self.variables,
               _MARK: os.environ.get(_MARK, "")}  # fmt: skip
        report, write = os.pipe()  # the stub says on it how many of the step's Python processes it forked
        try:
            stub = [sys.executable, str(STUB), ",".join(self.modules), STUB_HOME, ",".join(self.scripts), str(write)]
            argv = self.sandbox.command(stub, cwd=self.slot, work=[self.slot])
            proc = subprocess.Popen(argv, cwd=self.slot, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, pass_fds=(write,))  # fmt: skip
        except BaseException:
            os.close(report)
            raise
        finally:
            os.close(write)
        with _REPORTS_LOCK:
            _REPORTS[proc.pid] = report
        return proc

    def serves(self, text: str, cwd: Path) -> bool:
        """Whether a step script runs Python that a sandbox speeds up (uses_warm), or a console script
        that imports a pre-imported module (the creator's `mlyard infra create-project`)."""
        return (invokes_python(text) and uses_warm(text, cwd, self.modules)) or runs_script(text, self.scripts)

    @property
    def paused(self) -> bool:
        """Whether a sandbox's imports are paused until a core is idle."""
        return self._paused is not None

    def holds(self, root: Path) -> bool:
        """Whether a job's work directory is in the slot (its steps may then use a warm sandbox)."""
        return root.parent == self.slot

    def take(self) -> subprocess.Popen[bytes] | None:
        """A sandbox whose imports are done, for a step (its replacement starts when the job ends); None
        when none is ready (the step then runs cold: a step that imports little must not wait for the ML
        stack)."""
        with self._lock:
            if self._stopped:
                return None
            taken = None
            for proc in list(self._ready):
                if proc.poll() is not None:
                    self._ready.remove(proc)
                    self._warm.discard(proc.pid)
                    _close(proc)
                elif taken is None and self._check(proc, 0):
                    self._ready.remove(proc)
                    self._warm.discard(proc.pid)
                    if self._paused == proc.pid:  # it said ready just before it was paused
                        _signal_group(proc, signal.SIGCONT)
                        self._paused = None
                    taken = proc
            self._publish()
        if taken is not None:
            log.info("a step goes to a warm sandbox (its replacement starts after the job, on an idle core)")
        else:
            log.info("a Python step runs cold: no warm sandbox is ready (they import only on an idle core)")
        return taken

    def reported(self, proc: subprocess.Popen[bytes]) -> tuple[int, int] | None:
        """Once a taken sandbox's step ended: how many of the step's Python processes were forked from it and how
        many went to the real interpreter (logged); None if its stub said nothing (killed: a timeout, a cancel)."""
        with _REPORTS_LOCK:
            report = _REPORTS.pop(proc.pid, -1)
        if report < 0:
            return None
        try:
            readable, _, _ = select.select([report], [], [], 1.0)  # the stub wrote it before it exited
            words = os.read(report, 64).split() if readable else []
        except OSError:
            words = []
        finally:
            os.close(report)
        if len(words) != 2 or not all(word.isdigit() for word in words):
            return None
        forked, cold = int(words[0]), int(words[1])
        if cold:
            log.info("the step's Python in a warm sandbox: %d forked from it, %d started cold (a fork could not be "
                     "what a new interpreter is: MLYARD_STEP_WARM_DEBUG=1 on the step prints why)", forked, cold)
        else:
            log.info("the step's Python in a warm sandbox: %d forked from it, none started cold", forked)
        return forked, cold

    def check_empty(self) -> None:
        """After a job: the slot must be empty again (its directory moved out); if anything is left, the
        waiting sandboxes saw it: they are replaced, on a new slot."""
        try:
            left = any(self.slot.iterdir())
        except OSError:
            left = True
        if not left:
            return
        log.warning("the warm sandboxes' slot %s was not empty after a job: starting new ones", self.slot)
        with self._lock:
            ready, self._ready = self._ready, []
        _kill(ready)
        with self._lock:
            self._publish()
        self.slot = self.work_root / f"{SLOT_PREFIX}{uuid.uuid4().hex[:12]}"
        self.slot.mkdir()
        self._wake.set()

    def _check(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        """Whether the stub said it is ready (its first line on stderr, read here and nowhere else)."""
        if proc.pid in self._warm:
            return True
        stream = proc.stderr
        if stream is None:
            return False
        try:
            readable, _, _ = select.select([stream], [], [], timeout)
            if readable and os.read(stream.fileno(), len(READY)) == READY:
                self._warm.add(proc.pid)
                return True
        except (OSError, ValueError):
            pass
        return False

    def give(self, proc: subprocess.Popen[bytes], argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        """Give a taken sandbox its command (`send_request`, its stderr merged into its stdout)."""
        send_request(proc, argv, cwd=cwd, env=env, merge=True)

    def ready(self) -> int:
        """How many sandboxes finished their imports and wait for a step."""
        with self._lock:
            return 0 if self._stopped else sum(proc.pid in self._warm for proc in self._ready)

    def wait_ready(self, timeout: float = 60.0) -> int:
        """Wait until `size` sandboxes finished their imports (tests, benchmarks); how many are ready."""
        deadline = time.monotonic() + timeout
        while True:
            ready = self.ready()
            if ready >= self.size or time.monotonic() > deadline:
                return ready
            time.sleep(0.05)

    def _publish(self) -> None:
        """Write how many sandboxes are ready to STATUS_FILE (the server's `GET /health` reads it)."""
        ready = sum(proc.pid in self._warm for proc in self._ready) if not self._stopped else 0
        status = self.work_root / STATUS_FILE
        temporary = status.with_name(f"{STATUS_FILE}.{os.getpid()}")
        with contextlib.suppress(OSError):
            temporary.write_text(f"{ready}\n")
            temporary.replace(status)

    def count(self) -> int:
        with self._lock:
            return sum(proc.poll() is None for proc in self._ready)

    def stop(self) -> None:
        """Kill the waiting sandboxes and remove the slot (the agent stops)."""
        with self._lock:
            self._stopped = True
            ready, self._ready = self._ready, []
        self._halt.set()
        self._wake.set()
        _kill(ready)
        shutil.rmtree(self.slot, ignore_errors=True)
        with self._lock:
            self._publish()


def _kill(processes: list[subprocess.Popen[bytes]]) -> None:
    from mlyard.agent.process import kill_group

    for proc in processes:
        _signal_group(proc, signal.SIGCONT)  # a paused sandbox: its SIGTERM is delivered at once
        kill_group(proc.pid, proc, grace=1.0)
        proc.wait()
        _close(proc)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> bool:
    """Send a signal to a sandbox's process group (its own session: start_new_session); whether sent."""
    if proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _process_tree(pid: int) -> list[Any]:
    """psutil.Process of `pid` and of its descendants (empty when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


_REPORTS: dict[int, int] = {}  # a sandbox's pid -> the read end of its stub's report pipe
_REPORTS_LOCK = threading.Lock()


def _close(proc: subprocess.Popen[bytes]) -> None:
    with _REPORTS_LOCK:
        report = _REPORTS.pop(proc.pid, -1)
    if report >= 0:
        os.close(report)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def send_request(
    proc: subprocess.Popen[bytes], argv: list[str], *, cwd: Path, env: dict[str, str], merge: bool
) -> None:
    """Give a warm sandbox its step (in a thread: the stub reads it once its imports are done)."""
    data = json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "merge": merge}).encode()

    def write() -> None:
        stdin = proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError, ValueError):
            stdin.write(data)
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    threading.Thread(target=write, name="mlyard-warm-request", daemon=True).start()
