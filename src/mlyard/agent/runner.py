"""The agent loop: claim a job from the server, run it, report it, repeat.

Claims use the agent's token; everything about a claimed job uses the job's own token
(`JobSpec.access_token`). The loop never dies on an error: it logs it and tries again with backoff.
Used by the local agent processes of `mlyard server` and by `mlyard agent --url URL --token T`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from mlyard.agent.executor import run_job
from mlyard.agent.http_reporter import HttpReporter
from mlyard.agent.warm import WarmPool
from mlyard.client import AGENT_CLAIM_PATH, Client
from mlyard.errors import MlyardError
from mlyard.protocol import FAILED, JobOutcome, JobSpec
from mlyard.sandbox import Sandbox

logger = logging.getLogger("mlyard.agent")
CLAIM_PATH = AGENT_CLAIM_PATH
FILLING_CLAIM_WAIT = 2.0  # the longest claim of an agent whose warm sandbox is not ready yet (seconds)


def claim(client: Client, name: str, wait: float, *, warm: bool = False) -> JobSpec | None:
    """Ask for a job (the server holds the request up to `wait` seconds); None when there is none. `warm`:
    this agent has a warm step sandbox ready (the server then gives it a job before an agent without one)."""
    data = client.post(CLAIM_PATH, {"agent": name, "wait": wait, "warm": warm})
    return JobSpec.from_dict(data) if data else None


def execute(
    url: str, spec: JobSpec, *, name: str, work_root: Path, minute: float = 60.0, stop: threading.Event | None = None,
    sandbox: Sandbox | None = None, warm: WarmPool | None = None,
) -> JobOutcome:  # fmt: skip
    """Run a claimed job with its own token, heartbeats in the background, and report the outcome."""
    with Client(url, spec.access_token, timeout=60) as client:
        reporter = HttpReporter(client, spec, stop=stop)
        reporter.start()
        try:
            outcome = run_job(spec, work_root=work_root, reporter=reporter, agent_name=name, minute=minute,
                              sandbox=sandbox, warm=warm)  # fmt: skip
        except Exception as exc:  # the job must be reported whatever happened
            logger.exception("job %s failed inside the agent", spec.job_id)
            outcome = JobOutcome(FAILED, message=f"the agent failed while running the job: {exc}")
        finally:
            reporter.stop()
        reporter.complete(outcome)
    return outcome


def run_agent(
    url: str, token: str, *, name: str, work_root: Path, stop_event: threading.Event, poll_seconds: float = 1.0,
    claim_wait: int = 20, minute: float = 60.0, sandbox: Sandbox | None = None, warm: WarmPool | None = None,
) -> None:  # fmt: skip
    """Claim and run jobs until `stop_event` is set (the current job is finished first); steps run in
    `sandbox` (see run_job), Python steps in the warm sandboxes of `warm` when given."""
    backoff = poll_seconds
    with Client(url, token, timeout=claim_wait + 30) as client:
        while not stop_event.is_set():
            asked = time.monotonic()
            ready = warm is not None and warm.ready() > 0
            # while its warm sandbox fills, the agent asks again often, to tell the server once it is ready
            wait = claim_wait if warm is None or ready else min(claim_wait, FILLING_CLAIM_WAIT)
            try:
                spec = claim(client, name, wait, warm=ready)
            except MlyardError as exc:
                logger.warning("agent %s: claiming a job failed: %s (retrying in %.1f s)", name, exc, backoff)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:  # never let the loop die
                logger.exception("agent %s: unexpected error while claiming a job", name)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = poll_seconds
            if spec is None:
                stop_event.wait(max(0.0, poll_seconds - (time.monotonic() - asked)))
                continue
            logger.info("agent %s: running job %s (%s)", name, spec.job_id, spec.display_name)
            outcome = execute(url, spec, name=name, work_root=work_root, minute=minute, stop=stop_event,
                              sandbox=sandbox, warm=warm)  # fmt: skip
            logger.info("agent %s: job %s %s", name, spec.job_id, outcome.result)
