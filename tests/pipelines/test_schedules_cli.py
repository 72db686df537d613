"""`mlyard pipelines explain-trigger FILE --schedule [--at TIME] --ref REF` (offline): whether and when each
schedule of the file runs the branch (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlyard.cli.main import app
from tests.pipelines.conftest import DATA
from tests.pipelines.test_cli import mlyard

SCHEDULES = DATA / "schedules"
runner = CliRunner()


def explain(*args: str) -> str:
    result = runner.invoke(app, ["pipelines", "explain-trigger", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_each_schedule_says_whether_and_when_it_runs_the_branch() -> None:
    example = str(SCHEDULES / "docs-example.yml")
    text = explain(example, "--schedule", "--ref", "releases/v1", "--at", "2026-11-30T00:00Z")
    assert text.splitlines() == [
        "schedule 'Daily midnight build' (0 0 * * *): run: branch 'releases/v1' matches include 'releases/*'; "
        "next (UTC): 2026-11-30T00:00Z, 2026-12-01T00:00Z, 2026-12-02T00:00Z "
        "(only if the branch changed since the last successful scheduled run)",
        "schedule 'Weekly Sunday build' (0 12 * * 0): run: branch 'releases/v1' matches include 'releases/*'; "
        "next (UTC): 2026-12-06T12:00Z, 2026-12-13T12:00Z, 2026-12-20T12:00Z (always)",
    ]
    text = explain(example, "--schedule", "--ref", "refs/heads/releases/ancient/v0")
    assert text.splitlines()[0] == (
        "schedule 'Daily midnight build' (0 0 * * *): no run: branch 'releases/ancient/v0' is excluded by "
        "'releases/ancient/*'"
    )


def test_json_and_a_file_invalid_outside_its_schedules() -> None:
    file = str(SCHEDULES / "bad-cron-elsewhere-broken.yml")
    document = json.loads(explain(file, "--schedule", "--ref", "main", "--at", "2026-12-04T04:00", "--json"))
    assert document == {
        "run": True,
        "schedules": [
            {
                "display_name": "",
                "cron": "0 3 * * Mon-Fri",
                "always": False,
                "batch": True,
                "run": True,
                "reason": "branch 'main' matches include 'main'",
                "next_fires": ["2026-12-07T03:00:00Z", "2026-12-08T03:00:00Z", "2026-12-09T03:00:00Z"],
            }
        ],
    }
    text = explain(file, "--schedule", "--ref", "main", "--at", "2026-12-04T04:00")
    assert text.endswith("(only if the branch changed since the last successful scheduled run; "
                         "not while the previous scheduled run is in progress)\n")


def test_no_schedules_and_bad_input_are_one_line_errors(tmp_path: Path) -> None:
    assert explain(str(DATA / "valid" / "ml-ci.yml"), "--schedule", "--ref", "main") == (
        "no run: the pipeline has no schedules (no scheduled runs)\n"
    )
    bad = tmp_path / "bad.yml"
    bad.write_text("schedules:\n- cron: '0 0 * * 7'\nsteps:\n- script: x\n")
    result = mlyard("pipelines", "explain-trigger", str(bad), "--schedule", "--ref", "main")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(
        "bad.yml:2:3: schedules[0].cron: invalid cron '0 0 * * 7': 7 is out of range in the days-of-week field: "
        "use 0 through 6 (Sunday is 0)"
    )
    result = mlyard("pipelines", "explain-trigger", str(bad), "--schedule", "--ref", "main", "--at", "soon")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --at expects an ISO time such as 2026-11-30T03:00Z, got 'soon'"
    result = mlyard("pipelines", "explain-trigger", str(bad), "--ref", "main", "--at", "2026-11-30T00:00Z")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --at and --default-branch explain schedules: add --schedule"
