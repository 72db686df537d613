"""UsePythonVersion@0: the agent runs steps with its own Python (the server's), so the task only checks
that this Python matches `versionSpec` ("3.11", "3.x", "3.11.x", ">= 3.9", ">=3.9 <3.13")."""

from __future__ import annotations

import re
import sys

from mlyard.agent.environment import step_input
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import SUCCEEDED, StepSpec

_COMPARATOR = re.compile(r"(>=|<=|>|<|=|==|\^|~)?\s*v?(\d+(?:\.(?:\d+|x|\*))*)")


def _matches_one(op: str, spec: str, version: tuple[int, int, int]) -> bool:
    numbers: list[int] = []
    for part in spec.split("."):
        if not part.isdigit():
            break  # x or *: any value from here on
        numbers.append(int(part))
    size = len(numbers)
    padded = tuple(numbers + [0] * (3 - size))
    head = version[:size]
    checks = {
        "": head == tuple(numbers), "=": head == tuple(numbers), "==": head == tuple(numbers),
        ">=": version >= padded, ">": head > tuple(numbers), "<": version < padded, "<=": head <= tuple(numbers),
        "^": version >= padded and version[0] == padded[0], "~": version >= padded and version[:2] == padded[:2],
    }  # fmt: skip
    return checks[op]


def version_matches(spec: str, version: tuple[int, int, int]) -> bool:
    """Whether `version` satisfies a semver-like `spec` (alternatives with `||`, all comparators of one
    alternative must hold)."""
    for alternative in spec.split("||"):
        comparators = _COMPARATOR.findall(alternative.strip())
        if comparators and all(_matches_one(op, text, version) for op, text in comparators):
            return True
    return False


def use_python_version(step: StepSpec, job: JobState, run: StepRun) -> str:
    spec = step_input(job, step, "versionSpec", "3.x").strip()
    version = sys.version_info[:3]
    shown = ".".join(str(part) for part in version)
    if not version_matches(spec, version):
        raise StepError(
            f"Python {spec} is not available on this agent: it runs Python {shown} ({sys.executable}); "
            "change versionSpec or run an agent with that Python"
        )
    job.log.write(step, f"Using Python {shown} ({sys.executable}), which satisfies versionSpec '{spec}'")
    return SUCCEEDED
