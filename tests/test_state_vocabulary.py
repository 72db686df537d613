"""One run/stage/job/step state vocabulary: mlyard.protocol.State (Azure's names), imported by the server,
the API, the CLI, the web pages and the agents instead of copies of its strings."""

from __future__ import annotations

import re
from pathlib import Path

from mlyard.ci import states
from mlyard.protocol import FINAL_STATES, RESULTS, SUCCESSFUL_STATES, State

SRC = Path(__file__).resolve().parents[1] / "src" / "mlyard"
# A state name as a string literal in code ("succeeded", 'waiting', ...), e.g. `state == "running"`.
NAMES = "|".join(re.escape(state.value) for state in State)
LITERAL = re.compile(rf"""(?<![\w.\[-])["']({NAMES})["']""")
# Modules that still hold copies, waiting for their owners to import State; the list may only shrink.
# SAME_WORD: the same words in other vocabularies (expression functions succeeded()/failed()/canceled(),
# JUnit's <skipped>, test outcomes of every test format, test counts, deployment states, the reasons a
# process was interrupted).
NOT_YET = {"agent/http_reporter.py", "creator.py", "quickstart.py"}
SAME_WORD = {
    "pipelines/expressions/functions.py", "pipelines/expressions/status.py", "agent/junit.py",
    "agent/testformats.py", "services/workspace_jobs.py",
    "services/deployments.py", "services/runs.py", "workspace/local.py", "agent/executor.py",
    "agent/process.py", "agent/state.py",
}  # fmt: skip


def test_state_values_are_azures_names_and_ci_states_uses_them() -> None:
    assert [state.value for state in State] == [
        "notStarted", "queued", "waiting", "running",
        "succeeded", "succeededWithIssues", "failed", "canceled", "skipped",
    ]  # fmt: skip
    assert states.FINAL == FINAL_STATES == frozenset(RESULTS)
    assert {State.SUCCEEDED, State.SUCCEEDED_WITH_ISSUES} == SUCCESSFUL_STATES
    assert states.RUNNING is State.RUNNING and states.NOT_STARTED == "notStarted"


def test_no_module_copies_the_state_strings() -> None:
    copies = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "protocol.py" or relative in SAME_WORD:
            continue
        found = LITERAL.findall(path.read_text(encoding="utf-8"))
        if found:
            copies[relative] = sorted(set(found))
    assert set(copies) <= NOT_YET, f"import mlyard.protocol.State instead of copying state names: {copies}"
