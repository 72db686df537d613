"""Scheduled triggers on the server (issue 11): the orchestrator's injected clock moves, and due schedules
become runs (Build.Reason Schedule) exactly once, on real repos and the real orchestrator; `always: false`
skips an unchanged branch, `batch: true` skips while the previous scheduled run is in progress, and fires
missed while the server was down make one run. No test waits for a real minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mlyard.db.engine import transaction
from mlyard.db.tables import Run, Schedule
from mlyard.pipelines.schedules import parse_cron
from mlyard.services import pipelines
from mlyard.views import PipelineView
from tests.ci.engine import Engine

NIGHTLY = """\
trigger: none
schedules:
- cron: '0 3 * * *'
  displayName: Nightly
  branches:
    include: [master, releases/*]
- cron: '0 12 * * Sun'
  displayName: Weekly
  branches:
    include: [releases/*]
  always: true
steps:
- script: echo nightly
"""

BATCHED = """\
trigger: none
schedules:
- cron: '*/10 * * * *'
  displayName: Every ten minutes
  branches:
    include: [master]
  batch: true
steps:
- script: echo batched
"""


class Clock:
    """The orchestrator's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, engine: Engine, text: str) -> None:
        """Move to `text` (UTC) and settle the orchestrator there."""
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)
        engine.settle()


def scheduled_runs(engine: Engine) -> list[tuple[str, str, str]]:
    with transaction(engine.platform.sessions) as session:
        return [
            (r.reason, r.source_branch, r.source_version)
            for r in session.scalars(select(Run).where(Run.reason == "Schedule").order_by(Run.id))
        ]


def outcomes(engine: Engine) -> dict[tuple[str, str], str]:
    with transaction(engine.platform.sessions) as session:
        return {(s.display_name, s.branch): s.last_outcome for s in session.scalars(select(Schedule))}


def start(engine: Engine, yaml: str, when: str) -> Clock:
    clock = Clock(datetime.fromisoformat(when).replace(tzinfo=UTC))
    engine.orchestrator.schedules.clock = clock
    engine.repo("ml", {"ci.yml": yaml})
    engine.pipeline("nightly", "ml", "ci.yml")
    engine.settle()  # the schedules are seen now: they start counting
    return clock


def test_a_due_schedule_runs_once_and_always_false_skips_an_unchanged_branch(engine: Engine) -> None:
    clock = start(engine, NIGHTLY, "2026-11-30T01:00")
    assert scheduled_runs(engine) == []
    clock.at(engine, "2026-11-30T02:59")
    assert scheduled_runs(engine) == []

    clock.at(engine, "2026-11-30T03:00")
    clock.at(engine, "2026-11-30T03:00:40")  # the same minute again: no second run
    clock.at(engine, "2026-11-30T03:20")
    (first,) = scheduled_runs(engine)
    assert first[:2] == ("Schedule", "refs/heads/master")
    (spec,) = engine.drive({})
    variables = spec["variables"]
    assert isinstance(variables, dict)
    assert (variables["Build.Reason"], variables["Build.CronSchedule.DisplayName"]) == ("Schedule", "Nightly")
    assert variables["Build.RequestedFor"] == "Microsoft.VisualStudio.Services.TFS"

    clock.at(engine, "2026-12-01T03:00")  # nothing changed since the successful scheduled run
    assert len(scheduled_runs(engine)) == 1
    assert outcomes(engine)[("Nightly", "refs/heads/master")].startswith(
        "skipped: no changes since the last successful scheduled run"
    )

    work = engine.git.cwd / "ml"
    newest = engine.git.commit({"train.py": "print(1)\n"}, "train", cwd=work)
    engine.push("ml", work, "master")
    clock.at(engine, "2026-12-01T12:00")  # trigger: none: the push makes no run
    assert len(scheduled_runs(engine)) == 1
    clock.at(engine, "2026-12-02T03:00")
    assert scheduled_runs(engine)[1:] == [("Schedule", "refs/heads/master", newest)]
    assert ("Weekly", "refs/heads/master") not in outcomes(engine)  # its branches do not take master


def test_fires_missed_while_the_server_was_down_make_one_run_and_always_true_runs_unchanged(engine: Engine) -> None:
    clock = start(engine, NIGHTLY, "2026-11-30T01:00")
    work = engine.git.cwd / "ml"
    engine.git("checkout", "-q", "-b", "releases/v1", cwd=work)
    engine.push("ml", work, "releases/v1")
    clock.at(engine, "2026-11-30T02:00")  # the new branch is seen: its schedules start counting

    clock.at(engine, "2026-12-05T10:00")  # five nightly fires were missed on each branch
    assert sorted(b for _, b, _ in scheduled_runs(engine)) == ["refs/heads/master", "refs/heads/releases/v1"]
    engine.drive({})
    clock.at(engine, "2026-12-06T12:00")  # Sunday noon: Weekly, always: true, on the unchanged branch
    assert [b for _, b, _ in scheduled_runs(engine)][2:] == ["refs/heads/releases/v1"]
    assert outcomes(engine)[("Weekly", "refs/heads/releases/v1")] == f"run {_last_run_id(engine)}"


def test_batch_skips_while_the_previous_scheduled_run_is_in_progress(engine: Engine) -> None:
    clock = start(engine, BATCHED, "2026-11-30T08:05")
    clock.at(engine, "2026-11-30T08:10")
    assert len(scheduled_runs(engine)) == 1  # queued, no agent has claimed it

    work = engine.git.cwd / "ml"
    engine.git.commit({"data.csv": "a,b\n"}, "data", cwd=work)
    engine.push("ml", work, "master")
    clock.at(engine, "2026-11-30T08:20")  # changed, but the previous run is still in progress
    assert len(scheduled_runs(engine)) == 1
    assert outcomes(engine)[("Every ten minutes", "refs/heads/master")].startswith(
        "skipped: batch: true and the previous scheduled run"
    )
    engine.drive({})
    clock.at(engine, "2026-11-30T08:30")
    assert len(scheduled_runs(engine)) == 2


def test_a_schedule_removed_from_the_yaml_stops(engine: Engine) -> None:
    clock = start(engine, NIGHTLY, "2026-11-30T01:00")
    work = engine.git.cwd / "ml"
    engine.git.commit({"ci.yml": NIGHTLY.replace("'0 3 * * *'", "'0 4 * * *'")}, "later", cwd=work)
    engine.push("ml", work, "master")
    clock.at(engine, "2026-11-30T02:00")
    clock.at(engine, "2026-11-30T03:00")
    assert scheduled_runs(engine) == []
    clock.at(engine, "2026-11-30T04:00")
    assert len(scheduled_runs(engine)) == 1
    with transaction(engine.platform.sessions) as session:
        query = select(Schedule).where(Schedule.branch == "refs/heads/master")
        rows = {(s.cron, s.active) for s in session.scalars(query)}
    assert rows == {("0 3 * * *", False), ("0 4 * * *", True)}


def _last_run_id(engine: Engine) -> int:
    with transaction(engine.platform.sessions) as session:
        return max(session.scalars(select(Run.id)))


def test_pipelines_show_lists_the_schedules_with_their_next_fire_times(engine: Engine) -> None:
    clock = start(engine, NIGHTLY, "2026-11-30T01:00")
    clock.at(engine, "2026-11-30T03:00")
    (shown,) = pipelines.show_pipeline(engine.platform, "nightly").schedules or []
    assert (shown.display_name, shown.cron, shown.branch, shown.always, shown.batch) == (
        "Nightly", "0 3 * * *", "refs/heads/master", False, False,
    )  # fmt: skip
    assert shown.last_outcome == f"run {_last_run_id(engine)}" and shown.last_fire_at is not None
    fires = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in shown.next_fires]
    cron = parse_cron("0 3 * * *")
    assert len(fires) == 3 and fires == sorted(fires) and all(cron.matches(t) for t in fires)
    assert fires[1] - fires[0] == timedelta(days=1)
    assert PipelineView.from_dict(pipelines.show_pipeline(engine.platform, "nightly").to_dict()).schedules == [shown]


MIDNIGHT = """\
trigger: none
schedules:
- cron: '0 0 * * *'
  displayName: Daily midnight build
  branches:
    include:
    - master
steps:
- script: echo midnight
"""


def test_each_branch_is_scheduled_by_its_own_yaml_as_in_the_docs_example(engine: Engine) -> None:
    """Microsoft's example: `release` is added to the branches of the YAML in master but not in the
    release branch's own YAML, so release is not built on that schedule until its own YAML says so."""
    clock = start(engine, MIDNIGHT, "2026-11-30T01:00")
    work = engine.git.cwd / "ml"
    engine.git("checkout", "-q", "-b", "release", cwd=work)
    engine.push("ml", work, "release")
    engine.git("checkout", "-q", "master", cwd=work)
    with_release = MIDNIGHT.replace("    - master\n", "    - master\n    - release\n")
    engine.git.commit({"ci.yml": with_release}, "schedule release too", cwd=work)
    engine.push("ml", work, "master")
    clock.at(engine, "2026-12-01T00:00")
    assert [b for _, b, _ in scheduled_runs(engine)] == ["refs/heads/master"]

    engine.git("checkout", "-q", "release", cwd=work)
    engine.git.commit({"ci.yml": with_release}, "schedule release in its own YAML", cwd=work)
    engine.push("ml", work, "release")
    clock.at(engine, "2026-12-01T08:00")  # seen now: starts counting
    clock.at(engine, "2026-12-02T00:00")
    assert sorted(b for _, b, _ in scheduled_runs(engine)[1:]) == ["refs/heads/master", "refs/heads/release"]


def test_the_admin_hook_fires_a_schedule_now_through_the_rules_of_a_due_fire(engine: Engine) -> None:
    """`POST /api/v1/pipelines/{name}/schedules/run` (services.pipelines.run_schedules): a test sees the
    nightly run without waiting for the night; `always: false` still skips an unchanged branch."""
    from mlyard.errors import NotFound, PermissionDenied
    from mlyard.services.auth import Principal

    start(engine, NIGHTLY, "2026-11-30T01:00")
    admin = Principal(user_id=1, username="admin", is_admin=True, token_id=1, scopes=frozenset({"admin"}))
    (fire,) = pipelines.run_schedules(engine.platform, admin, "nightly", "Nightly")
    assert (fire.schedule, fire.branch, fire.skipped) == ("Nightly", "refs/heads/master", "")
    assert scheduled_runs(engine)[0][:2] == ("Schedule", "refs/heads/master")
    engine.settle()
    (spec,) = engine.drive({})
    assert spec["variables"]["Build.CronSchedule.DisplayName"] == "Nightly"  # type: ignore[index]
    (again,) = pipelines.run_schedules(engine.platform, admin, "nightly")
    assert again.run_id is None and again.skipped.startswith("no changes since the last successful scheduled run")
    with pytest.raises(NotFound, match="no active schedule 'Hourly'"):
        pipelines.run_schedules(engine.platform, admin, "nightly", "Hourly")
    reader = Principal(user_id=2, username="reader", is_admin=False, token_id=2, scopes=frozenset({"repo:read"}))
    with pytest.raises(PermissionDenied):
        pipelines.run_schedules(engine.platform, reader, "nightly")


def test_a_push_within_the_minute_looks_again_only_at_its_own_repository(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two minutes a pass after a push reads the branches of the pushed repository only (it read every
    repository's on each push before: a server with many repositories paid for all of them at every push); the
    next minute's pass reads them all, and a schedule added by the push is seen at once."""
    clock = start(engine, NIGHTLY, "2026-11-30T01:00:00")
    engine.repo("other", {"ci.yml": BATCHED})
    engine.pipeline("batched", "other", "ci.yml")
    engine.settle()
    runner = engine.orchestrator.schedules
    read: list[str] = []
    real = runner._branches
    monkeypatch.setattr(runner, "_branches", lambda repo: read.append(repo) or real(repo))

    work = engine.git.cwd / "ml"
    engine.git("checkout", "-q", "-b", "releases/1", cwd=work)
    engine.push("ml", work, "releases/1")
    clock.now += timedelta(seconds=20)  # the same minute
    engine.settle()
    assert read == ["ml"]
    assert ("Weekly", "refs/heads/releases/1") in outcomes(engine)  # the new branch's schedules are counted now

    read.clear()
    clock.at(engine, "2026-11-30T01:01:00")  # a new minute: every repository
    assert sorted(set(read)) == ["ml", "other"]
