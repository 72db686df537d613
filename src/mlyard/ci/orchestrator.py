"""The scheduler: moves runs forward. Idempotent `advance(run)`; one lock; woken by events.

pending push events -> runs (the trigger outbox, ci/triggers.py); queued run -> compile the
YAML of its commit (templates from the same commit) in a compile thread, outside the lock, bounded by
the limits of pipelines/limits.py -> stages, jobs and steps rows -> wait for permission to protected
resources -> running: stages and jobs start when their dependencies are final and their condition
holds (the rules: ci/scheduler.py); jobs become claimable by agents through the job queue
(ci/queue.py, `self.queue`); stage and run results roll up. Leases of running jobs expire into "agent lost".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from mlyard.ci import completion, permissions, plan_store, sources, states, triggers
from mlyard.ci.host import Host
from mlyard.ci.queue import AGENT_LOST, JobQueue
from mlyard.ci.scheduler import schedule, skip_steps
from mlyard.ci.schedules import Clock, ScheduleRunner, utc_now
from mlyard.db.engine import transaction
from mlyard.db.tables import Environment, Pipeline, Run, RunJob, RunStage, RunStep
from mlyard.db.tables import Schedule as ScheduleRow
from mlyard.errors import MlyardError
from mlyard.pipelines import PipelineError, Plan, predefined
from mlyard.pipelines.predefined import RunFacts
from mlyard.protocol import LOCAL_AGENT_NAME

log = logging.getLogger("mlyard.orchestrator")
COMPILE_WORKERS = 2
# Expired leases are looked at every tenth of the lease (at least every LEASE_CHECK_MIN_SECONDS, at most every
# HOUSEKEEPING_SECONDS): a lost agent's job fails within a tenth of its lease after it expired. Pending pushes and
# due schedules are looked at on every notify without a run (a push, a new pipeline: at once) and at each sweep
# (a safety net: a trigger that failed is retried; a schedule fires within a sweep of its minute). A wake-up in
# between advances only the runs it names (a job of theirs ended, they were queued or compiled, a job of theirs
# lost its lease). An idle server so asks its database about once a second in all, not five times.
HOUSEKEEPING_SECONDS = 5.0
LEASE_CHECK_MIN_SECONDS = 1.0
# Every unfinished run is advanced at least this often: a safety net only (every change that moves a run
# names it), so that a burst of queued runs does not cost a pass over all of them every second.
SWEEP_SECONDS = 5.0


class RunEnds:
    """Wakes the callers waiting for runs to end (`GET /runs/{id}?wait=S`) instead of their polling.

    A waiter registers a wake-up function (called from the scheduler's threads; it must not block); at
    most MAX_WAITERS at once (more get None and must poll)."""

    MAX_WAITERS = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, Callable[[], None]] = {}
        self._next = 0

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call `wake` whenever a run ends, until the returned function is called (None: too many waiters)."""
        with self._lock:
            if len(self._waiters) >= self.MAX_WAITERS:
                return None
            self._next += 1
            key = self._next
            self._waiters[key] = wake

        def unsubscribe() -> None:
            with self._lock:
                self._waiters.pop(key, None)

        return unsubscribe

    def ended(self) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for wake in waiters:
            try:
                wake()
            except Exception:  # a waiter that went away (its event loop closed) is no reason to fail a run
                log.debug("waking a run waiter failed", exc_info=True)


class Orchestrator:
    def __init__(self, platform: Host, *, clock: Clock = utc_now) -> None:
        self.platform = platform
        # scheduled triggers (`schedules:`): due fires become runs; `clock` is injectable for tests
        self.schedules = ScheduleRunner(platform, clock)
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self._due: set[int] = set()  # runs to advance at the next wake-up
        self._sweep = True  # advance every unfinished run at the next wake-up
        self._due_lock = threading.Lock()
        self.run_ends = RunEnds()  # wakes `GET /runs/{id}?wait=S` when a run ends
        # claims, leases and the secrets of running jobs; a claim never interleaves with a scheduling pass
        self.queue = JobQueue(platform.sessions, platform.settings.job_lease_seconds, self.lock)
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Compilation runs in these threads, never under `lock`: a slow pipeline stalls no other run.
        self._compiler = ThreadPoolExecutor(max_workers=COMPILE_WORKERS, thread_name_prefix="mlyard-compile")
        self._compiling: set[int] = set()
        self._stopping: set[int] = set()  # canceled while compiling: their compilation ends early
        self._succeeded: list[completion.Finished] = []  # runs whose completion triggers are still to check
        self._resource_cache = completion.ResourceCache()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlyard-orchestrator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        self.queue.notify_ready()  # waiting claims answer at once (no job)
        with self.lock:  # compilations under way end early; their runs stay queued for the next start
            self._stopping.update(self._compiling)
        if self._thread:
            self._thread.join(timeout=10)
        self._compiler.shutdown(wait=False, cancel_futures=True)

    def notify(self, run_id: int | None = None) -> None:
        """Wake the scheduler: to advance run `run_id` (a job of it ended, it was queued), or, without
        an id, to trigger pending pushes and advance every unfinished run."""
        with self._due_lock:
            if run_id is None:
                self._sweep = True
            else:
                self._due.add(run_id)
        self.wake.set()

    def compiling(self) -> int:
        """How many runs are being compiled right now."""
        with self.lock:
            return len(self._compiling)

    def lease_check_seconds(self) -> float:
        """How often expired leases are looked at: a tenth of the lease, within 1 s to HOUSEKEEPING_SECONDS."""
        return min(max(self.queue.lease.total_seconds() / 10, LEASE_CHECK_MIN_SECONDS), HOUSEKEEPING_SECONDS)

    def _loop(self) -> None:
        last_sweep = last_leases = -SWEEP_SECONDS
        lease_every = self.lease_check_seconds()
        while not self.stop_event.is_set():
            self.wake.clear()  # a notify from now on wakes the next wait
            with self._due_lock:
                due, self._due = self._due, set()
                sweep, self._sweep = self._sweep, False
            now = time.monotonic()
            housekeeping = sweep  # a notify without a run: pushes or pipelines to look at
            sweep = sweep or now - last_sweep >= SWEEP_SECONDS
            leases = sweep or now - last_leases >= lease_every
            try:
                self.tick(None if sweep else due, housekeeping=housekeeping or sweep, leases=leases)
            except Exception:
                log.exception("scheduler tick failed")
            if sweep:
                last_sweep = now
            if leases:
                last_leases = now
            next_due = min(last_sweep + SWEEP_SECONDS, last_leases + lease_every)
            self.wake.wait(timeout=max(0.0, next_due - time.monotonic()))

    def tick(self, only: set[int] | None = None, *, housekeeping: bool = True, leases: bool | None = None) -> None:
        """Trigger the pending push events (the outbox), expire leases, advance every unfinished run, then create
        the runs of the due schedules (advanced at the next wake-up: a push's runs start compiling before the
        schedules' pass reads the pipelines' YAML); with `only`, advance just those runs and the runs of jobs
        whose lease expired (a targeted wake-up: the rest wait for the next sweep); without `housekeeping`, no
        pushes or schedules; `leases` (default: as `housekeeping`) whether expired leases are looked at."""
        if housekeeping and triggers.trigger_pending(self.platform):
            self.notify()
        with self.lock:
            succeeded, self._succeeded = self._succeeded, []
        for done in succeeded:  # pipeline completion triggers (resources.pipelines), outside the lock
            try:
                if completion.trigger_completion(self.platform, done, self._resource_cache):
                    self.notify()
            except Exception:
                log.exception("completion triggers after run %d failed", done.run_id)
        with self.lock:
            lost = self.queue.expire_leases() if (housekeeping if leases is None else leases) else []
            if only is None:
                with transaction(self.platform.sessions) as session:
                    ids = list(
                        session.scalars(
                            select(Run.id).where(Run.state.in_([states.NOT_STARTED, *states.ACTIVE])).order_by(Run.id)
                        )
                    )
            else:
                ids = sorted(only | _runs_of_jobs(self.platform, lost))
            for run_id in ids:
                try:
                    self.advance(run_id)
                except Exception:
                    log.exception("advancing run %d failed", run_id)
        if only is None:  # a safety net: a pass that queued jobs has woken the agents already (advance)
            self.queue.notify_ready()
        if housekeeping:  # after the runs: a push's runs compile first (a pass reads the pipelines' YAML: 50 ms+)
            try:
                if self.schedules.run_due():
                    self.notify()
            except Exception:  # the runs under way still advance
                log.exception("checking the scheduled triggers failed")

    def advance(self, run_id: int) -> None:
        if self._advance(run_id):
            self.run_ends.ended()

    def _advance(self, run_id: int) -> bool:
        """Move the run forward; True when this made it end."""
        with self.lock:
            with transaction(self.platform.sessions) as session:
                run = session.get(Run, run_id)
                if run is None or states.is_final(run.state):
                    return False
                compile_now = False
                if run.state == states.NOT_STARTED:
                    if _busy(session, run):
                        return False
                    states.transition(run, states.QUEUED)
                    compile_now = not run.cancel_requested
                    if not compile_now:
                        self.notify(run_id)  # ended at the next wake-up
                        return False
                elif run.plan is None:
                    if run.cancel_requested:  # also while its compilation is under way: that one stops
                        if run_id in self._compiling:
                            self._stopping.add(run_id)
                        _finish_unstarted(session, run, states.CANCELED, "canceled before it started")
                        return True
                    self._start_compile(run_id)
                    return False
            if compile_now:  # queued (committed): compiled at once, not at the next wake-up
                self._start_compile(run_id)
                return False
            with transaction(self.platform.sessions) as session:
                run = session.get(Run, run_id)
                if run is None or states.is_final(run.state):
                    return False
                if (
                    run.cancel_requested
                    and run.state in (states.QUEUED, states.WAITING)
                    and not _jobs_started(session, run)
                ):
                    _finish_unstarted(session, run, states.CANCELED, "canceled before it started")
                    return True
                if run.state in (states.QUEUED, states.WAITING) and not self._resources_ready(session, run):
                    return states.is_final(run.state)
                if run.state != states.RUNNING:
                    states.transition(run, states.RUNNING)
                claimable = schedule(session, run)
                final = states.is_final(run.state)
                done = completion.finished(session, run) if final else None
                waiting = _batched_behind(session, run) if final else []
            if claimable:  # committed: the agents waiting for a job claim it now
                self.queue.notify_ready()
            for waiting_id in waiting:  # a batched run of the same branch may start now
                self.notify(waiting_id)
            if done is not None:  # committed: its completion triggers are checked by the next tick
                self._succeeded.append(done)
                self.wake.set()
            return final

    # -- preparing ---------------------------------------------------------------------------
    def _start_compile(self, run_id: int) -> None:
        if run_id in self._compiling:
            return
        self._compiling.add(run_id)
        try:
            self._compiler.submit(self._prepare, run_id)
        except RuntimeError:  # shutting down
            self._compiling.discard(run_id)

    def _prepare(self, run_id: int) -> None:
        """Compile the run's YAML (no lock held), then store the plan if the run still wants it."""
        advanced = False
        try:
            plan, error, errors, context = self._compile(run_id)
            if self.stop_event.is_set():  # stopped, not canceled: compiled again after the restart
                return
            with self.lock:
                ended = self._store_plan(run_id, plan, error, errors, context)
            if ended is None:
                return
            if ended:
                self.run_ends.ended()
                return
            self.advance(run_id)  # at once: its first jobs become claimable without waiting for a tick
            advanced = True
        except Exception:
            log.exception("preparing run %d failed", run_id)
        finally:
            with self.lock:
                self._compiling.discard(run_id)
                self._stopping.discard(run_id)
            if not advanced:  # the next wake-up looks at it again (advanced: what moves it next names it)
                self.notify(run_id)

    def _store_plan(
        self, run_id: int, plan: Plan | None, error: str, errors: list[str], context: dict[str, str]
    ) -> bool | None:
        """Store the compiled plan and the run's rows (False), or end the run: canceled meanwhile, or its
        pipeline invalid (True); None when the run no longer wants a plan."""
        with transaction(self.platform.sessions) as session:
            run = session.get(Run, run_id)
            if run is None or states.is_final(run.state) or run.plan is not None:
                return None
            if run.cancel_requested:
                _finish_unstarted(session, run, states.CANCELED, "canceled before it started")
                return True
            if plan is None:
                run.message, run.errors = error, errors
                states.transition(run, states.FAILED)
                return True
            run.plan = plan.to_dict()  # read back only through ci.plan_store.load
            run.build_number = build_number(session, run, plan.run_name, context)
            _create_rows(session, run, plan)
            return False

    def _compile(self, run_id: int) -> tuple[Plan | None, str, list[str], dict[str, str]]:
        """(compiled plan or None, error message, diagnostics, compile context) of the run."""
        with transaction(self.platform.sessions) as session:
            run = session.get(Run, run_id)
            pipeline = session.get(Pipeline, run.pipeline_id) if run is not None else None
            if run is None or pipeline is None:
                return None, "the run or its pipeline was deleted", [], {}
            context = compile_context(self.platform, run, pipeline)
            args = (pipeline.repo, run.source_version, pipeline.yaml_path, dict(run.parameters), dict(run.variables))
        try:
            plan = sources.compile_at(
                self.platform,
                args[0],
                args[1],
                args[2],
                parameters=args[3],
                variables=args[4],
                context=context,
                stop=lambda: run_id in self._stopping,
                resource_variables=lambda loaded: completion.latest_runs(self.platform, loaded.resources, args[4]),
            )
            return plan, "", [], context
        except PipelineError as exc:
            errors = list(exc.errors or [exc.message])
            return None, "the pipeline is invalid:\n" + "\n".join(errors), errors, context
        except sources.ContainerEngineMissing as exc:
            return None, exc.message, [], context
        except MlyardError as exc:
            return None, f"cannot compile the pipeline: {exc.message}", [], context
        except Exception as exc:  # a bug must not leave the run queued forever
            log.exception("compiling run %d failed", run_id)
            message = f"cannot compile the pipeline: internal error ({type(exc).__name__}); see the server log"
            return None, message, [], context

    def _resources_ready(self, session: Session, run: Run) -> bool:
        doc = run.plan or {}
        needed = plan_store.resources(doc)
        missing = [f"{k}:{n}" for k, n in needed if not permissions.exists(session, k, n)]
        if missing:
            run.message = (
                f"the pipeline uses {', '.join(missing)}, which does not exist; create it "
                "(mlyard connections create / variable-groups create / environments create) and run again"
            )
            _finish_unstarted(session, run, states.FAILED, run.message)
            return False
        granted = permissions.permitted(session, run.pipeline_id)
        waiting = [f"{k}:{n}" for k, n in needed if (k, n) not in granted]
        run.waiting_for = waiting
        if waiting:
            pipeline = session.get(Pipeline, run.pipeline_id)
            name = pipeline.name if pipeline else "?"
            run.message = (
                f"waiting for permission to use {', '.join(waiting)}: grant it with "
                f"`mlyard runs permit {run.id}` (or `mlyard pipelines permit {name} --resource "
                f"{waiting[0]}`)"
            )
            if run.state != states.WAITING:
                states.transition(run, states.WAITING)
            return False
        if run.message.startswith("waiting for permission"):
            run.message = ""
        return True

    # -- leases ------------------------------------------------------------------------------
    def agent_exited(self, name: str, code: int | None) -> list[int]:
        """Fail the jobs agent `name` was running (as "agent lost"): its process exited, so none of them can
        finish (their sandboxed steps died with it: the step sandbox dies with its parent). The server's
        supervisor of its own agents calls this before it starts the agent again, so a job claimed just before
        the agent died fails at once instead of when its lease runs out, and its run advances (fails, or goes on
        with what does not depend on the job). Returns the ids of the jobs failed."""
        with self.lock, transaction(self.platform.sessions) as session:
            running = session.scalars(
                select(RunJob).where(RunJob.state == states.RUNNING, RunJob.agent == name).order_by(RunJob.id)
            )
            jobs = list(running)
            for job in jobs:
                self.queue.fail_lost(
                    session, job, f"{AGENT_LOST}: agent {name} exited (code {code}) while running this job"
                )
            runs = {job.run_id for job in jobs}
            failed = [job.id for job in jobs]
        for run_id in sorted(runs):
            self.notify(run_id)
        return failed

    def recover_after_restart(self) -> int:
        """Fail the jobs the previous server process's own agents were running (they died with it).

        Jobs of other agents (`mlyard agent` elsewhere) keep their lease: an agent that outlived the
        restart goes on heartbeating and completes its job; one that did not is failed when its lease
        expires.
        """
        with transaction(self.platform.sessions) as session:
            running = session.scalars(select(RunJob).where(RunJob.state == states.RUNNING))
            jobs = [job for job in running if not job.agent or LOCAL_AGENT_NAME.fullmatch(job.agent)]
            for job in jobs:
                self.queue.fail_lost(
                    session,
                    job,
                    f"{AGENT_LOST}: the server stopped while agent {job.agent or '?'} was running this job",
                )
            return len(jobs)


def _busy(session: Session, run: Run) -> bool:
    return (
        session.scalars(
            select(Run.id).where(
                Run.pipeline_id == run.pipeline_id,
                Run.id != run.id,
                Run.source_branch == run.source_branch,
                Run.state.in_(states.ACTIVE),
            )
        ).first()
        is not None
    )


def _runs_of_jobs(platform: Host, job_ids: list[int]) -> set[int]:
    if not job_ids:
        return set()
    with transaction(platform.sessions) as session:
        return set(session.scalars(select(RunJob.run_id).where(RunJob.id.in_(job_ids))))


def _batched_behind(session: Session, run: Run) -> list[int]:
    """The runs of the same pipeline and branch that wait (not started) for `run` to finish."""
    return list(
        session.scalars(
            select(Run.id).where(
                Run.pipeline_id == run.pipeline_id,
                Run.source_branch == run.source_branch,
                Run.state == states.NOT_STARTED,
            )
        )
    )


def _jobs_started(session: Session, run: Run) -> bool:
    return (
        session.scalars(
            select(RunJob.id).where(RunJob.run_id == run.id, RunJob.state.in_([states.RUNNING, *states.FINAL]))
        ).first()
        is not None
    )


def _finish_unstarted(session: Session, run: Run, state: str, message: str) -> None:
    final = states.CANCELED if state == states.CANCELED else states.SKIPPED
    for stage in session.scalars(select(RunStage).where(RunStage.run_id == run.id)):
        if not states.is_final(stage.state):
            states.transition(stage, final)
    for job in session.scalars(select(RunJob).where(RunJob.run_id == run.id)):
        if not states.is_final(job.state):
            states.transition(job, final)
        skip_steps(session, job)
    run.message = message
    states.transition(run, state)


def run_facts(platform: Host, run: Run, pipeline: Pipeline) -> RunFacts:
    session = object_session(run)
    fired_by = session.get(ScheduleRow, run.schedule_id) if session is not None and run.schedule_id else None
    return RunFacts(
        run_id=run.id,
        reason=run.reason,
        source_branch=run.source_branch,
        source_version=run.source_version,
        requested_for=run.requested_for,
        pipeline_id=pipeline.id,
        pipeline_name=pipeline.name,
        repo=pipeline.repo,
        server_url=platform.settings.url,
        cron_schedule=fired_by.display_name if fired_by is not None else "",
    )


def compile_context(platform: Host, run: Run, pipeline: Pipeline) -> dict[str, str]:
    """Predefined variables known when the run is compiled (visible to ${{ variables.X }})."""
    return predefined.run_variables(run_facts(platform, run, pipeline))


_DATE_TOKEN = re.compile(r"\$\(Date:([^)]+)\)")
_REV_TOKEN = re.compile(r"\$\(Rev:(r+)\)")
_MACRO = re.compile(r"\$\(([A-Za-z0-9_.]+)\)")


def build_number(session: Session, run: Run, template: str | None, context: dict[str, str]) -> str:
    """Azure's run number: default `$(Date:yyyyMMdd).$(Rev:r)`; Rev counts up per distinct prefix."""
    text = template or "$(Date:yyyyMMdd).$(Rev:r)"
    now = datetime.now(UTC)

    def date(match: re.Match[str]) -> str:
        fmt = match.group(1)
        for token, value in (
            ("yyyy", f"{now:%Y}"),
            ("yy", f"{now:%y}"),
            ("MM", f"{now:%m}"),
            ("dd", f"{now:%d}"),
            ("HH", f"{now:%H}"),
            ("mm", f"{now:%M}"),
            ("ss", f"{now:%S}"),
        ):
            fmt = fmt.replace(token, value)
        return fmt

    names = {k.lower(): v for k, v in context.items()}
    names.update({k.split(".")[-1].lower(): v for k, v in context.items()})
    text = _DATE_TOKEN.sub(date, text)
    text = _MACRO.sub(lambda m: names.get(m.group(1).lower(), m.group(0)), text)
    rev = _REV_TOKEN.search(text)
    if rev is None:
        return text
    head, tail = text[: rev.start()], text[rev.end() :]
    pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    like = head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    numbers = select(Run.build_number).where(  # only the runs whose number has the same prefix (an index-free
        Run.pipeline_id == run.pipeline_id, Run.id != run.id, Run.build_number.like(like, escape="\\")
    )  # scan of the others would grow with every run of the pipeline)
    previous = [int(m.group(1)) for b in session.scalars(numbers) if (m := pattern.match(b or ""))]
    return f"{head}{str(max(previous, default=0) + 1).zfill(len(rev.group(1)))}{tail}"


def _create_rows(session: Session, run: Run, plan: Plan) -> None:
    envs = {e.name: e for e in session.scalars(select(Environment))}
    for s_index, stage in enumerate(plan.stages):
        session.add(
            RunStage(
                run_id=run.id,
                position=s_index,
                name=stage.name,
                display_name=stage.display_name or stage.name,
                state=states.NOT_STARTED,
                depends_on=list(stage.depends_on),
                condition=stage.condition,
            )
        )
        for j_index, job in enumerate(stage.jobs):
            environment = job.environment.name if job.environment else ""
            row = RunJob(
                run_id=run.id,
                stage=stage.name,
                position=s_index * 1000 + j_index,
                name=job.name,
                display_name=job.display_name or job.name,
                kind=job.kind,
                environment=environment,
                state=states.NOT_STARTED,
                depends_on=list(job.depends_on),
                condition=job.condition,
                continue_on_error=job.continue_on_error,
            )
            if environment in envs and envs[environment].approval_required:
                row.approval = "required"
            session.add(row)
            session.flush()
            for p_index, step in enumerate(job.steps):
                session.add(
                    RunStep(
                        job_id=row.id,
                        step_key=plan_store.step_id(step, p_index),
                        position=p_index,
                        name=step.name,
                        display_name=step.display_name or step.name,
                        state=states.NOT_STARTED,
                    )
                )
