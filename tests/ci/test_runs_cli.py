"""`mlyard pipelines run` / `mlyard runs list|show|logs` as a user types them, against a real server."""

from __future__ import annotations

import json

import pytest

from tests.ci.helpers import make_repo, register, wait_state
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow

YAML = """trigger: none
steps:
- script: echo "first [bold]line[/]"; sleep 1; echo second line
  displayName: talk
"""


def test_run_follow_list_show_and_logs(server: Server, git: Git) -> None:
    make_repo(server, git, "cli-runs", {"azure-pipelines.yml": YAML})
    register(server, "cli-runs", "cli-runs", "azure-pipelines.yml", folder="cli")
    queued = json.loads(server.cli("pipelines", "run", "cli-runs", "--json").stdout)
    followed = server.cli("runs", "logs", str(queued["id"]), "--follow").stdout
    assert "first [bold]line[/]" in followed and "second line" in followed  # printed as is, never as markup
    assert wait_state(server, queued["id"])["state"] == "succeeded"

    lines = server.cli("runs", "list", "--pipeline", "cli-runs").stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN", "PIPELINE", "NUMBER"]
    row = lines[1].split()
    assert row[0] == str(queued["id"]) and row[1] == "cli-runs" and "succeeded" in row  # plain text, no markup
    assert [r["id"] for r in json.loads(server.cli("runs", "list", "--pipeline", "cli-runs", "--json").stdout)] == [
        queued["id"]
    ]

    shown = server.cli("runs", "show", str(queued["id"])).stdout
    assert f"run {queued['id']}: cli-runs #1" in shown and "talk succeeded" in shown
    assert json.loads(server.cli("runs", "show", str(queued["id"]), "--json").stdout)["state"] == "succeeded"

    step_log = server.cli("runs", "logs", str(queued["id"]), "--step", "talk").stdout
    assert "second line" in step_log and "Checkout" not in step_log

    missing = server.cli("runs", "show", "999999", check=False)
    assert missing.returncode == 3 and missing.stderr.startswith("error: run 999999 not found")
