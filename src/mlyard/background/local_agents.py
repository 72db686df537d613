"""The local agents of `mlyard server`: N agent processes claiming jobs through the API like any agent.

Each runs `python -m mlyard.background.local_agents` with an allow-listed environment (no MLYARD_HOME,
none of the server's variables; its token comes in MLYARD_AGENT_TOKEN, never in argv), so the agent
holds nothing of the server's state; its steps run in the step sandbox (mlyard.sandbox) that hides the
server's data directory. An agent process stays in the server's process group and exits when its
parent is gone, so it dies with the server as the threads it replaces did.

Step processes carry the marker `MLYARD_AGENT_MARK=<home>`; a server that starts after a crash
kills every process still carrying its home's marker, so no step of a lost job keeps running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mlyard.sandbox import Sandbox, passed_environment

log = logging.getLogger("mlyard.agents")
WARM_STATUS = ".warm-ready"  # mlyard.agent.warm.STATUS_FILE (not imported: the server does not import the agent)
MARK_VARIABLE = "MLYARD_AGENT_MARK"
TOKEN_VARIABLE = "MLYARD_AGENT_TOKEN"
# Variables of the server's environment its agents keep: test and debugging knobs, the bwrap binary.
AGENT_VARIABLES = ("MLYARD_AGENT_MINUTE_SECONDS", "MLYARD_KEEP_WORK", "MLYARD_BWRAP", "MLYARD_STEP_WARM",
                   "MLYARD_STEP_WARM_MODULES", "MLYARD_STEP_WARM_IDLE")  # fmt: skip
PARENT_POLL_SECONDS = 0.5
SUPERVISE_SECONDS = 1.0


def kill_orphans(marker: str, keep: frozenset[int] = frozenset()) -> int:
    """Kill the process groups of processes left by a previous server of the same home (but the processes
    `keep`: this server's own, started with its mark before it looked, e.g. its MLflow servers' zygote)."""
    me = os.getpid()
    groups: set[int] = set()
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != me and proc.pid not in keep and proc.environ().get(MARK_VARIABLE) == marker:
                groups.add(os.getpgid(proc.pid))
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    own = os.getpgid(me)
    for group in groups - {own}:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    return len(groups - {own})


@dataclass
class LocalAgents:
    url: str
    token: str
    work_dir: Path
    count: int
    marker: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    sandbox: Sandbox = field(default_factory=Sandbox.none)
    hidden: list[Path] = field(default_factory=list)  # what the sandbox hides (the server's paths)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # called with an agent's name and exit code when its process exited, before it is started again: the server
    # fails the jobs it was running at once (Orchestrator.agent_exited) rather than when their lease runs out
    on_exit: Callable[[str, int | None], object] | None = None

    def start(self) -> None:
        self.processes = [self._spawn(index) for index in range(1, self.count + 1)]
        threading.Thread(target=self._supervise, name="mlyard-agents", daemon=True).start()
        log.info("started %d local agent process(es)", self.count)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**passed_environment(), MARK_VARIABLE: self.marker, TOKEN_VARIABLE: self.token,
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        env.update({name: os.environ[name] for name in AGENT_VARIABLES if os.environ.get(name)})
        root = self.work_dir / str(index) / "work"
        root.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "mlyard.background.local_agents", "--url", self.url,
                "--name", f"local-{index}", "--work-dir", str(root)]  # fmt: skip
        argv += [arg for path in self.hidden for arg in ("--hide", str(path))]
        argv += [] if self.sandbox.enabled else ["--unsandboxed-steps"]
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, cwd=root)

    def running(self) -> int:
        """How many of the agent processes run now (`GET /status`)."""
        return sum(proc.poll() is None for proc in self.processes)

    def warm_sandboxes(self) -> int:
        """How many warm step sandboxes (mlyard.agent.warm) wait ready in the running agents (each agent
        writes its count to its work root)."""
        count = 0
        for index, proc in enumerate(self.processes, start=1):
            if proc.poll() is not None:
                continue
            try:
                text = (self.work_dir / str(index) / "work" / WARM_STATUS).read_text()[:20]
            except OSError:
                continue
            count += int(text) if text.strip().isdigit() else 0
        return count

    def _supervise(self) -> None:
        """Restart an agent process that died, once the jobs it was running are failed (`on_exit`); when the
        server begins to stop, ask every agent to stop claiming (each finishes its current job)."""
        while not self.stop_event.wait(SUPERVISE_SECONDS):
            for index, proc in enumerate(self.processes, start=1):
                if proc.poll() is not None and not self.stop_event.is_set():
                    log.warning("local agent local-%d exited with code %s: restarting it", index, proc.returncode)
                    if self.on_exit is not None:
                        try:
                            self.on_exit(f"local-{index}", proc.returncode)
                        except Exception:  # its jobs then fail when their lease runs out, as before
                            log.exception("failing the jobs of local agent local-%d failed", index)
                    self.processes[index - 1] = self._spawn(index)
        self._terminate()

    def _terminate(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self._terminate()
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _exit_with_parent(parent: int) -> None:
    """An agent whose server is gone stops at once (its steps die with it: bwrap --die-with-parent)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def main(argv: list[str] | None = None) -> None:
    from mlyard.agent.runner import run_agent
    from mlyard.agent.warm import WarmPool
    from mlyard.sandbox import server_paths

    parser = argparse.ArgumentParser(prog="python -m mlyard.background.local_agents")
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--hide", type=Path, action="append", default=[])
    parser.add_argument("--unsandboxed-steps", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    hidden = [path for hide in args.hide for path in server_paths(hide)]
    sandbox = Sandbox.detect(hidden=hidden, unsandboxed=args.unsandboxed_steps)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    minute = float(os.environ.get("MLYARD_AGENT_MINUTE_SECONDS") or 60.0)  # tests shorten timeouts
    warm = WarmPool.create(sandbox, args.work_dir)  # Python steps' warm sandboxes (agent/warm.py)
    try:
        run_agent(args.url, os.environ[TOKEN_VARIABLE], name=args.name, work_root=args.work_dir, stop_event=stop,
                  minute=minute, claim_wait=5, sandbox=sandbox, warm=warm)  # fmt: skip
    finally:
        if warm is not None:
            warm.stop()


if __name__ == "__main__":
    main()
