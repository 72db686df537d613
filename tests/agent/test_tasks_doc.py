"""docs/agent.md's task table names exactly the tasks the agent runs (TASK_HANDLERS), as datasette's
tests check its documentation against the code."""

from __future__ import annotations

import re
from pathlib import Path

from mlyard.agent.steps import TASK_HANDLERS

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"


def test_the_task_table_matches_the_handlers() -> None:
    text = DOC.read_text()
    table = text[text.index("## Tasks\n") : text.index("**File matching patterns**")]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {name.lower() for cell in first_cells for name in re.findall(r"`(\w+@\d+)`", cell)}
    for cell in first_cells:  # `PublishCodeCoverageResults@2`, `@1`
        base = re.search(r"`(\w+)@\d+`", cell)
        documented.update(f"{base.group(1)}{v}".lower() for v in re.findall(r"`(@\d+)`", cell) if base)
    assert documented == set(TASK_HANDLERS)
