"""Scheduled triggers on the server: due schedules become runs (Build.Reason Schedule) exactly once.

Once a minute of the injected clock for every pipeline, and when a pipeline was created or a push recorded
for the pipelines of those repositories (the orchestrator's tick calls :meth:`ScheduleRunner.run_due`), for
every branch of the pipeline's repository, the ``schedules:`` of the pipeline's YAML *at
the head of that branch* are read (Azure: each branch's own YAML decides whether that branch is
scheduled) and each schedule whose branch filter takes the branch is checked against its row in the
``schedules`` table (one row per pipeline, schedule and branch; a schedule is named by its cron and
displayName):

- a schedule seen for the first time starts counting then (Azure adds the scheduled runs when the
  pipeline is created, its YAML updated or the branch created): its first fire is the next match;
- a due fire moves the row's cursor to now in the transaction that creates the run, with a
  compare-and-set on the old cursor: a fire makes one run even with two server processes, and fires
  missed while the server was down make one run, not one each (Azure does not catch up);
- ``always: false`` skips a fire when the head commit is the commit of the last successful run of
  that schedule and branch; ``batch: true`` (with ``always: false``) skips it while a run of that
  schedule and branch is still in progress.

Bounded work: a parsed ``schedules:`` is cached per (repository, YAML path, commit), at most
:data:`MAX_READS` files are read from git per pass (the others on the next passes: a late
evaluation still fires, once), and at most :data:`MAX_BRANCHES` branches of a repository are
looked at. The YAML is read outside any transaction; only the schedules section has to be valid
(a run of a file invalid elsewhere fails with its diagnostics, as a CI run does).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.ci import sources, states
from mlyard.ci.host import Host
from mlyard.ci.runs import new_run
from mlyard.db.engine import transaction
from mlyard.db.tables import Pipeline, PushEvent, Repo, Run
from mlyard.db.tables import Schedule as ScheduleRow
from mlyard.errors import MlyardError
from mlyard.git import repos as git
from mlyard.pipelines import PipelineError
from mlyard.pipelines.parser import schedules_of
from mlyard.pipelines.patterns import HEADS
from mlyard.pipelines.schedules import Schedule, schedule_decision
from mlyard.pipelines.source import Reporter, load_source
from mlyard.protocol import SUCCESSFUL_STATES, Reason

log = logging.getLogger("mlyard.schedules")
Clock = Callable[[], datetime]
MAX_BRANCHES = 500  # branches of one repository looked at (by name)
MAX_READS = 200  # pipeline files read from git per pass
CACHE_SIZE = 4096  # parsed schedules kept, per (repository, YAML path, commit)
REQUESTED_FOR = "Microsoft.VisualStudio.Services.TFS"  # Azure's Build.RequestedFor of scheduled runs


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Target:
    """One pipeline and what its schedules need: its repository, YAML path and default branch."""

    pipeline_id: int
    name: str
    repo: str
    yaml_path: str
    default_branch: str


class ScheduleRunner:
    """Owned by the orchestrator (its clock is injectable: tests move time without waiting)."""

    def __init__(self, platform: Host, clock: Clock = utc_now) -> None:
        self.platform = platform
        self.clock = clock
        self._cache: OrderedDict[tuple[str, str, str], tuple[Schedule, ...]] = OrderedDict()
        self._last_pass: tuple[object, ...] | None = None
        self._reads = 0

    def run_due(self) -> list[int]:
        """Create the runs of every due schedule. Returns the new run ids.

        One pass over every pipeline per minute, and between them one over the repositories where a pipeline
        was created or a push recorded since the last pass (new schedules are seen at once; a fire is due at
        most once a minute, and the minute's first pass made those of the other repositories).
        """
        now = self.clock().astimezone(UTC)
        minute = now.replace(second=0, microsecond=0)
        with transaction(self.platform.sessions) as session:
            pipelines = session.execute(select(func.max(Pipeline.id), func.count(Pipeline.id))).one()
            changes = (minute, *pipelines, session.scalar(select(func.max(PushEvent.id))))
            last = self._last_pass
            if last == changes:
                return []
            changed: set[str] | None = None  # None: every repository (a new minute, or the first pass)
            if last is not None and last[0] == minute:
                # Between two minutes only pushes and new pipelines change what a pass finds (a deleted pipeline
                # has no schedules left to look at): their repositories.
                changed = set(session.scalars(select(Pipeline.repo).where(Pipeline.id > (last[1] or 0)).distinct()))
                changed.update(session.scalars(select(PushEvent.repo).where(PushEvent.id > (last[3] or 0)).distinct()))
        self._last_pass, self._reads = changes, 0
        created: list[int] = []
        branches: dict[str, list[tuple[str, str]]] = {}
        for target in self._targets(changed):
            try:
                if target.repo not in branches:
                    branches[target.repo] = self._branches(target.repo)
                created += self._pipeline(target, branches[target.repo], now)
            except Exception:  # one pipeline must not hold back the others
                log.exception("checking the schedules of pipeline %s failed", target.name)
        return created

    def _targets(self, repos: set[str] | None = None) -> list[Target]:
        """The pipelines (of the repositories `repos`; None: of all) with what their schedules need."""
        if repos is not None and not repos:
            return []
        with transaction(self.platform.sessions) as session:
            repo_rows = select(Repo) if repos is None else select(Repo).where(Repo.name.in_(sorted(repos)))
            defaults = {r.name: r.default_branch for r in session.scalars(repo_rows)}
            pipeline_rows = select(Pipeline).order_by(Pipeline.id)
            if repos is not None:
                pipeline_rows = pipeline_rows.where(Pipeline.repo.in_(sorted(defaults)))
            return [
                Target(p.id, p.name, p.repo, p.yaml_path, defaults.get(p.repo, ""))
                for p in session.scalars(pipeline_rows)
                if p.repo in defaults
            ]

    def _branches(self, repo: str) -> list[tuple[str, str]]:
        """(ref, head commit) of the repository's branches, by name, at most MAX_BRANCHES."""
        found = sorted((HEADS + b["name"], b["sha"]) for b in git.branches(sources.bare_repo(self.platform, repo)))
        if len(found) > MAX_BRANCHES:
            log.warning("repository %s has %d branches: schedules look at the first %d", repo, len(found), MAX_BRANCHES)
        return found[:MAX_BRANCHES]

    def schedules_at(self, repo: str, yaml_path: str, commit: str) -> tuple[Schedule, ...] | None:
        """The schedules of the pipeline file at `commit` (cached); None when the read budget is spent."""
        key = (repo, yaml_path, commit)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if self._reads >= MAX_READS:
            return None
        self._reads += 1
        schedules: tuple[Schedule, ...] = ()
        try:
            document = load_source(sources.read_yaml(self.platform, repo, commit, yaml_path), yaml_path)
            reporter = Reporter(yaml_path)
            schedules = schedules_of(document.tree, reporter) or ()
            if reporter.diagnostics:
                log.info("%s at %s: schedules ignored: %s", yaml_path, commit[:10], reporter.diagnostics[0])
        except PipelineError as exc:
            log.info("%s at %s: schedules ignored: %s", yaml_path, commit[:10], exc.message)
        except MlyardError:  # the file is not in this commit: no schedules
            pass
        self._cache[key] = schedules
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return schedules

    def _pipeline(self, target: Target, branches: list[tuple[str, str]], now: datetime) -> list[int]:
        created: list[int] = []
        seen: dict[str, set[tuple[str, str]]] = {}
        for ref, commit in branches:
            schedules = self.schedules_at(target.repo, target.yaml_path, commit)
            if schedules is None:  # not read yet (budget): this branch keeps its rows as they are
                continue
            seen[ref] = set()
            for schedule in schedules:
                decision = schedule_decision(schedule, ref, after=now, default_branch=target.default_branch)
                if not decision.run:
                    continue
                seen[ref].add((schedule.cron.text, schedule.display_name))
                run_id = self._fire(target, ref, commit, schedule, now)
                if run_id is not None:
                    created.append(run_id)
        existing = {ref for ref, _ in branches}
        with transaction(self.platform.sessions) as session:
            for row in session.scalars(
                select(ScheduleRow).where(ScheduleRow.pipeline_id == target.pipeline_id, ScheduleRow.active)
            ):
                gone = row.branch not in existing
                dropped = row.branch in seen and (row.cron, row.display_name) not in seen[row.branch]
                if gone or dropped:
                    row.active = False
        return created

    def _fire(self, target: Target, ref: str, commit: str, schedule: Schedule, now: datetime) -> int | None:
        """Check one schedule of one branch; in one transaction, move its cursor and create its run."""
        key = (ScheduleRow.pipeline_id == target.pipeline_id, ScheduleRow.branch == ref)
        name = (ScheduleRow.cron == schedule.cron.text, ScheduleRow.display_name == schedule.display_name)
        try:
            with transaction(self.platform.sessions) as session:
                row = session.scalars(select(ScheduleRow).where(*key, *name)).first()
                if row is None:  # first seen: it starts counting now
                    session.add(
                        ScheduleRow(
                            pipeline_id=target.pipeline_id,
                            branch=ref,
                            cron=schedule.cron.text,
                            display_name=schedule.display_name,
                            always=schedule.always,
                            batch=schedule.batch,
                            active=True,
                            checked_at=now,
                        )
                    )
                    return None
                row.always, row.batch, row.active = schedule.always, schedule.batch, True
                due = schedule.cron.next_after(row.checked_at)
                if due is None or due > now:
                    return None
                claimed = session.execute(
                    update(ScheduleRow)
                    .where(ScheduleRow.id == row.id, ScheduleRow.checked_at == row.checked_at)
                    .values(checked_at=now, last_fire_at=due)
                    .execution_options(synchronize_session=False)
                )
                if getattr(claimed, "rowcount", 0) != 1:  # another process handled this fire
                    return None
                return self._start(session, row, target, ref, commit, schedule)
        except IntegrityError:  # the row was added by another process meanwhile: checked on the next pass
            return None

    def _start(
        self, session: Session, row: ScheduleRow, target: Target, ref: str, commit: str, schedule: Schedule
    ) -> int | None:
        skip = skip_reason(session, row.id, commit, always=schedule.always, batch=schedule.batch)
        if skip:
            row.last_outcome = f"skipped: {skip}"
            log.info("schedule %r of pipeline %s on %s skipped: %s", schedule.name, target.name, ref, skip)
            return None
        run = new_run(
            session,
            target.pipeline_id,
            reason=Reason.SCHEDULE,
            ref=ref,
            sha=commit,
            requested_for=REQUESTED_FOR,
            parameters={},
            variables={},
        )
        run.schedule_id = row.id
        row.last_outcome = f"run {run.id}"
        log.info("schedule %r of pipeline %s on %s: run %d", schedule.name, target.name, ref, run.id)
        return run.id


    def fire_now(self, pipeline_id: int, display_name: str | None = None) -> list[ScheduleFire]:
        """The admin/testing hook (``POST /api/v1/pipelines/{name}/schedules/run``): every active schedule of the
        pipeline (or those of `display_name`), on every branch it takes, fires now as if its time had come.

        The fire goes through the same rules as a due one (``always``/``batch`` skips, Build.Reason
        Schedule, the row's cursor moved to now), so a test sees what the real schedule does tomorrow
        without waiting for it. The branch's head commit is read now.
        """
        now = self.clock().astimezone(UTC)
        with transaction(self.platform.sessions) as session:
            pipeline = session.get(Pipeline, pipeline_id)
            if pipeline is None:
                return []
            rows = [(r.id, r.branch) for r in session.scalars(
                select(ScheduleRow).where(ScheduleRow.pipeline_id == pipeline_id, ScheduleRow.active)
                .order_by(ScheduleRow.id)) if display_name is None or r.display_name == display_name]  # fmt: skip
            repo = pipeline.repo
        heads = dict(self._branches(repo)) if rows else {}
        fires: list[ScheduleFire] = []
        for row_id, branch in rows[:MAX_BRANCHES]:
            commit = heads.get(branch)
            if commit is None:
                continue
            with transaction(self.platform.sessions) as session:
                row = session.get(ScheduleRow, row_id)
                if row is None:
                    continue
                row.checked_at, row.last_fire_at = now, now
                skip = skip_reason(session, row.id, commit, always=row.always, batch=row.batch)
                run_id = None
                if skip:
                    row.last_outcome = f"skipped: {skip}"
                else:
                    run = new_run(session, pipeline_id, reason=Reason.SCHEDULE, ref=branch, sha=commit,
                                  requested_for=REQUESTED_FOR, parameters={}, variables={})  # fmt: skip
                    run.schedule_id = row.id
                    row.last_outcome = f"run {run.id}"
                    run_id = run.id
                fires.append(ScheduleFire(row.display_name or row.cron, branch, run_id, skip))
        return fires


@dataclass(frozen=True)
class ScheduleFire:
    """What firing one schedule of one branch did: the run it created, or why it made none."""

    schedule: str  # displayName, else the cron
    branch: str
    run_id: int | None
    skipped: str = ""


def skip_reason(session: Session, schedule_id: int, commit: str, *, always: bool, batch: bool) -> str:
    """Why a due fire makes no run ("" when it makes one): the ``always``/``batch`` table of Azure's docs."""
    if always:
        return ""
    runs = select(Run).where(Run.schedule_id == schedule_id).order_by(Run.id.desc())
    last_ok = session.scalars(runs.where(Run.state.in_(SUCCESSFUL_STATES))).first()
    if last_ok is not None and last_ok.source_version == commit:
        return (
            f"no changes since the last successful scheduled run (run {last_ok.id} at {commit[:10]}); "
            "set always: true to run anyway"
        )
    if batch:
        active = session.scalars(runs.where(Run.state.not_in(states.FINAL))).first()
        if active is not None:
            return f"batch: true and the previous scheduled run (run {active.id}) is still in progress"
    return ""
