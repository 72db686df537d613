"""The local agents of `mlyard server`: N runner threads claiming jobs through the API like any agent.

Their steps run in the server's step sandbox (mlyard.sandbox: bubblewrap, the data directory hidden, an
allow-listed environment), so that a step never reaches what the threads' process holds.

Step processes carry the marker `MLYARD_AGENT_MARK=<home>`; a server that starts after a crash
kills every process still carrying its home's marker, so no step of a lost job keeps running.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mlyard.sandbox import Sandbox

log = logging.getLogger("mlyard.agents")
MARK_VARIABLE = "MLYARD_AGENT_MARK"


def kill_orphans(marker: str) -> int:
    """Kill the process groups of processes left by a previous server of the same home."""
    me = os.getpid()
    groups: set[int] = set()
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != me and proc.environ().get(MARK_VARIABLE) == marker:
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
    stop_event: threading.Event = field(default_factory=threading.Event)
    sandbox: Sandbox = field(default_factory=Sandbox.none)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        from mlyard.agent.runner import run_agent

        # Tests shorten timeouts with MLYARD_AGENT_MINUTE_SECONDS (the length of a minute, in seconds).
        minute = float(os.environ.get("MLYARD_AGENT_MINUTE_SECONDS") or 60.0)

        for index in range(1, self.count + 1):
            name = f"local-{index}"
            root = self.work_dir / str(index) / "work"
            root.mkdir(parents=True, exist_ok=True)
            thread = threading.Thread(
                target=run_agent,
                args=(self.url, self.token),
                kwargs={
                    "name": name,
                    "work_root": root,
                    "stop_event": self.stop_event,
                    "minute": minute,
                    "claim_wait": 5,
                    "sandbox": self.sandbox,
                },
                name=f"mlyard-agent-{index}",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)
        log.info("started %d local agent(s)", self.count)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=timeout)
