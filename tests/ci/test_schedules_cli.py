"""`mlyard pipelines show NAME` lists the schedules the server read from each branch, with their next
fire times (UTC), as text and as JSON, against a real server (issue 11)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from mlyard.pipelines.schedules import parse_cron
from tests.ci.helpers import make_repo, register
from tests.conftest import Git, Server
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.slow

YAML = """trigger: none
schedules:
- cron: '30 2 * * Mon-Fri'
  displayName: Weekday retrain
  branches:
    include: [master]
  batch: true
steps:
- script: echo retrain
"""


def shown(server: Server, name: str) -> dict[str, Any]:
    """`pipelines show --json`, once the server has read the schedules (a pass follows a new pipeline)."""
    deadline = time.monotonic() + 60
    while True:
        document: dict[str, Any] = json.loads(server.cli("pipelines", "show", name, "--json").stdout)
        if document.get("schedules") or time.monotonic() > deadline:
            return document
        time.sleep(0.2)


def test_pipelines_show_lists_schedules_with_next_fire_times(server: Server, git: Git) -> None:
    make_repo(server, git, "retrain", {"ci.yml": YAML})
    register(server, "retrain", "retrain", "ci.yml")
    (schedule,) = shown(server, "retrain")["schedules"]
    fires = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in schedule.pop("next_fires")]
    assert schedule == {
        "display_name": "Weekday retrain",
        "cron": "30 2 * * Mon-Fri",
        "branch": "refs/heads/master",
        "always": False,
        "batch": True,
        "last_fire_at": None,
        "last_outcome": "",
    }
    cron = parse_cron("30 2 * * Mon-Fri")
    assert len(fires) == 3 and fires == sorted(fires) and all(cron.matches(t) for t in fires)

    lines = server.cli("pipelines", "show", "retrain").stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("SCHEDULE")))
    assert lines[header - 1] == "schedules"
    row = lines[header + 1]
    assert row.startswith("Weekday retrain") and "30 2 * * Mon-Fri" in row and "master" in row
    assert fires[0].strftime("%Y-%m-%d %H:%M:%S") in row and "if changed, one at a time" in row

    with sign_in(server) as web:  # the web page shows the same schedules
        page = web.get("/pipelines/retrain").text
    assert "<h2>Schedules</h2>" in page and "<code>30 2 * * Mon-Fri</code>" in page
    assert schedule_fires(page) == [t.isoformat().replace("+00:00", "Z") for t in fires]


def schedule_fires(page: str) -> list[str]:
    """The next fire times in the schedules table of a pipeline page."""
    cell = page.split("<h2>Schedules</h2>", 1)[1].split("<td>")[4].split("</td>")[0]
    return cell.split(", ")
