"""Warm step sandboxes: Python's imports paid before the step that needs them starts.

A warm sandbox is a step sandbox (mlyard.sandbox) started before its step is known, with the cold
sandbox's options but for one: it binds the agent's *slot* directory instead of a job's work directory.
The agent creates each job's work directory inside the slot, so a warm sandbox sees exactly what a cold
one sees (the slot holds only that one job's directory; when the job ends its directory is moved out of
the slot at once). Inside runs :mod:`mlyard.agent.warm_stub`, which pre-imports the ML stack and waits
for ONE step; `python` invocations of that step are forks of the pre-imported interpreter (see the
stub). A warm sandbox serves one step and is never reused; a sandbox that waited through a job without
serving a step ran no code of it and serves the next job.

`MLYARD_STEP_WARM` sets how many wait per agent (default DEFAULT_SIZE: off);
`MLYARD_STEP_WARM_MODULES` the modules they pre-import (comma-separated; default DEFAULT_MODULES,
those not installed are skipped). Only sandboxed agents use them (`--unsandboxed-steps`: none).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from mlyard.sandbox import Sandbox, passed_environment

log = logging.getLogger("mlyard.agent")
SIZE_ENV = "MLYARD_STEP_WARM"
MODULES_ENV = "MLYARD_STEP_WARM_MODULES"
# Off unless asked: on the 2-core development machine the imports of waiting sandboxes competed with the
# steps and the server for the cores, and quickstart got slower (docs/agent.md, "Warm step sandboxes").
DEFAULT_SIZE = 0
MAX_SIZE = 8
MAX_MODULES = 64
# the ML stack mlyard ships, and what the project template imports of it
DEFAULT_MODULES = ("numpy", "pandas", "sklearn", "mlflow", "sklearn.linear_model", "sklearn.metrics",
                   "sklearn.pipeline", "sklearn.preprocessing", "sklearn.model_selection", "mlflow.sklearn")
STUB = Path(__file__).with_name("warm_stub.py")
SLOT_PREFIX = "slot-"  # no leading dot: tools skip hidden folders (pytest's norecursedirs, linters)
STATUS_FILE = ".warm-ready"  # in the work root (hidden from steps): how many sandboxes are ready
WARM_HOME = "/tmp/.mlyard-warm/home"  # HOME of the stub, in the sandbox's private /tmp
READY = b"ready\n"  # what the stub writes on stderr once its imports are done (warm_stub.READY)
MAX_SCRIPT_BYTES = 1 << 20
PYTHON_WORD = re.compile(r"\bpython3?\b")
INVOCATION = re.compile(r"\bpython3?(?:\.\d+)?[ \t]+((?:-[A-Za-z]+[ \t]+)*)(\S+)")  # options, then the target
IMPORT = re.compile(r"^[ \t]*(?:import|from)[ \t]+([A-Za-z_][A-Za-z_0-9]*)", re.MULTILINE)
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


class WarmPool:
    """The warm sandboxes of one agent, all on its one slot (an agent runs one job at a time)."""

    def __init__(self, sandbox: Sandbox, work_root: Path, size: int, modules: Sequence[str]) -> None:
        self.sandbox = sandbox
        self.work_root = work_root.resolve()
        self.size = size
        self.modules = tuple(modules)
        self.slot = self.work_root / f"{SLOT_PREFIX}{uuid.uuid4().hex[:12]}"
        self._ready: list[subprocess.Popen[bytes]] = []
        self._warm: set[int] = set()  # pids of the waiting sandboxes whose imports are done
        self._held = False  # a job runs: no sandbox starts
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False

    @classmethod
    def create(cls, sandbox: Sandbox, work_root: Path) -> WarmPool | None:
        """The pool the settings ask for, started; None when off or when steps run unsandboxed."""
        size = warm_size()
        if size == 0 or not sandbox.enabled:
            return None
        pool = cls(sandbox.hiding(work_root), work_root, size, warm_modules())
        pool.start()
        return pool

    def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        for stale in sorted(self.work_root.glob(SLOT_PREFIX + "*"))[:16]:  # a previous agent process's
            shutil.rmtree(stale, ignore_errors=True)
        self.slot.mkdir()
        threading.Thread(target=self._fill, name="mlyard-warm-sandboxes", daemon=True).start()
        log.info("warm step sandboxes: %d waiting, pre-importing %s", self.size, ", ".join(self.modules) or "nothing")

    def _fill(self) -> None:
        """Keep `size` sandboxes waiting, starting one at a time (each import takes a core for seconds)
        and none while a job runs (its steps need the cores; the job's used sandboxes are replaced when
        it ends)."""
        while True:
            with self._lock:
                if self._stopped:
                    return
                proc = None
                if not self._held and len(self._ready) < self.size and all(p.pid in self._warm for p in self._ready):
                    try:
                        proc = self._spawn()
                        self._ready.append(proc)
                    except OSError as exc:
                        log.warning("a warm step sandbox could not start: %s", exc)
            if proc is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            stream = proc.stderr
            assert stream is not None
            while not self._stopped and proc.poll() is None:  # until its imports are done
                with contextlib.suppress(OSError, ValueError):
                    select.select([stream], [], [], 0.5)
                with self._lock:
                    if proc not in self._ready or self._check(proc, 0):
                        break
            self._publish()

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
        # as a step's (TF_BUILD: every step has it; MLflow reads it at import), but HOME: the sandbox's own
        # /tmp (what the imports write there, e.g. MLflow's telemetry id, stays in this sandbox)
        env = {**passed_environment(), "HOME": WARM_HOME, "PYTHONUNBUFFERED": "1", "TF_BUILD": "True",
               _MARK: os.environ.get(_MARK, "")}  # fmt: skip
        argv = self.sandbox.command([sys.executable, str(STUB), ",".join(self.modules)], cwd=self.slot,
                                    work=[self.slot])  # fmt: skip
        return subprocess.Popen(argv, cwd=self.slot, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip

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
                    taken = proc
            self._publish()
            return taken

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

    def wait_ready(self, timeout: float = 60.0) -> int:
        """Wait until `size` sandboxes finished their imports (tests, benchmarks); how many are ready."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                ready = sum(proc.pid in self._warm for proc in self._ready)
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
        self._wake.set()
        _kill(ready)
        shutil.rmtree(self.slot, ignore_errors=True)
        with self._lock:
            self._publish()


def _kill(processes: list[subprocess.Popen[bytes]]) -> None:
    from mlyard.agent.process import kill_group

    for proc in processes:
        kill_group(proc.pid, proc, grace=1.0)
        proc.wait()
        _close(proc)


def _close(proc: subprocess.Popen[bytes]) -> None:
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
