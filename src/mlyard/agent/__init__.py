"""The pipeline agent: the worker that claims jobs from the server and runs them.

`run_job` executes one job (no network); `run_agent` is the claim loop that talks to the server's
agent API. The agent imports only the standard library, psutil, the HTTP client, the wire shapes and
the pipeline expression language; never the database or the services.
"""

from __future__ import annotations

from mlyard.agent.executor import run_job
from mlyard.agent.state import JobReporter

__all__ = ["JobReporter", "run_agent", "run_job"]


def __getattr__(name: str) -> object:
    if name == "run_agent":  # the runner brings the HTTP client; the executor does not need it
        from mlyard.agent.runner import run_agent

        return run_agent
    raise AttributeError(name)
