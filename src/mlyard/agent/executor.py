"""Run one job: a fresh work directory, its steps in order with conditions, retries, timeouts and
cancel, and the job's outcome. Nothing here talks to the server; a :class:`JobReporter` does."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import uuid
from pathlib import Path

from mlyard.agent.environment import expand
from mlyard.agent.masking import Masker, mask_outcome
from mlyard.agent.process import kill_group_if_marked, kill_marked, wait_namespace_ended
from mlyard.agent.state import Interrupted, JobReporter, JobState, LogBuffer, StepError, StepRun
from mlyard.agent.steps import handler_for
from mlyard.agent.variables import VariableStore
from mlyard.agent.warm import WarmPool
from mlyard.agent.workspace import create_workspace, predefined_variables, remove_workspace
from mlyard.errors import MlyardError
from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions import ExpressionContext, evaluate_condition
from mlyard.protocol import (
    CANCELED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    SUCCEEDED_WITH_ISSUES,
    Issue,
    JobOutcome,
    JobSpec,
    StepSpec,
)
from mlyard.sandbox import Sandbox, SandboxUnavailable, default_home, server_paths

logger = logging.getLogger("mlyard.agent")
IMPLICIT_CHECKOUT = StepSpec(
    id="__checkout", name="checkout", display_name="Checkout self", kind="checkout", inputs={"repository": "self"}
)
_RANK = {SUCCEEDED: 0, SUCCEEDED_WITH_ISSUES: 1, FAILED: 2, CANCELED: 3}
_STATUS = {SUCCEEDED: "Succeeded", SUCCEEDED_WITH_ISSUES: "SucceededWithIssues", FAILED: "Failed", CANCELED: "Canceled"}


def job_steps(spec: JobSpec) -> list[StepSpec]:
    """The steps to run: a regular job without a checkout step checks out `self` first (Azure's
    implicit checkout); deployment jobs (System.JobKind "deployment") do not."""
    steps = list(spec.steps)
    kind = spec.variables.get("System.JobKind", "job")
    if kind == "job" and spec.repository is not None and not any(step.kind == "checkout" for step in steps):
        steps.insert(0, IMPLICIT_CHECKOUT)
    return steps


def run_job(
    spec: JobSpec, *, work_root: Path, reporter: JobReporter, agent_name: str = "mlyard-agent", minute: float = 60.0,
    sandbox: Sandbox | None = None, warm: WarmPool | None = None,
) -> JobOutcome:  # fmt: skip
    """Run every step of `spec` in a fresh work directory under `work_root`; report through `reporter`.

    `minute` is the length of a minute in seconds for timeouts (tests shorten it). Step processes run in
    `sandbox` (default: bubblewrap hiding MLYARD_HOME or ~/.mlyard, the job fails where it is unavailable);
    the agent's work root is hidden from them too, but for the job's own work directory. With `warm` (the
    agent's warm sandboxes, on the same work root) the job's directory is made in their slot and Python
    steps run in them (mlyard.agent.warm)."""
    started = time.monotonic()
    try:
        sandbox = (sandbox or Sandbox.detect(hidden=server_paths(default_home()))).hiding(work_root)
    except SandboxUnavailable as exc:
        return JobOutcome(FAILED, message=str(exc))
    secrets = [spec.access_token, *spec.secrets.values()]
    for connection in spec.connections.values():
        secrets += [connection.settings[key] for key in connection.secret_keys if key in connection.settings]
    masker = Masker(secrets)
    log = LogBuffer(reporter, masker)
    if warm is not None and not (sandbox.enabled and warm.slot.is_dir()):
        warm = None
    try:
        workspace = create_workspace(work_root, spec, slot=warm.slot if warm is not None else None)
    except OSError as exc:
        return JobOutcome(FAILED, message=f"the agent could not create the job's work directory: {exc}")
    variables = VariableStore(spec.variables, spec.secrets, spec.readonly)
    for name, value in predefined_variables(spec, workspace, agent_name=agent_name, work_root=work_root).items():
        variables.put(name, value)
    if variables.get("System.AccessToken") is None:  # the job's token, secret, as in Azure
        variables.put("System.AccessToken", spec.access_token, secret=True)
    limit = spec.timeout_in_minutes * minute if spec.timeout_in_minutes > 0 else math.inf
    job = JobState(spec, workspace, variables, masker, reporter, log, minute, started + limit, uuid.uuid4().hex,
                   sandbox=sandbox, warm=warm)  # fmt: skip
    log.write(None, f"Job {spec.display_name or spec.name} (stage {spec.stage}) on agent {agent_name}")
    log.write(None, f"Workspace: {workspace.root}")
    if not sandbox.enabled:
        log.write(None, "##[warning]Steps run unsandboxed (--unsandboxed-steps): they have the agent's OS rights")
    if warm is not None:
        warm.hold()  # no sandbox starts while the job's steps need the cores
    try:
        named = [_named(step, job) for step in job_steps(spec)]  # at job start, as Azure names its steps
        for step in named:
            _run_step(step, job)
    finally:
        log.write(None, f"Finishing job: {_STATUS.get(_job_result(job), _job_result(job))}")
        log.flush()
        _clean_up(job)
        remove_workspace(workspace, work_root=work_root)
        if warm is not None:
            try:
                warm.check_empty()
            finally:
                warm.release()
    outcome = JobOutcome(
        result=_job_result(job), outputs=dict(job.outputs), secret_outputs=dict(job.secret_outputs),
        tags=list(job.tags), build_number=job.build_number, message=job.message,
    )  # fmt: skip
    return mask_outcome(outcome, masker)


def _job_result(job: JobState) -> str:
    if job.timed_out:
        return FAILED
    if job.canceled:
        return CANCELED
    return {"Failed": FAILED, "SucceededWithIssues": SUCCEEDED_WITH_ISSUES}.get(job.status, SUCCEEDED)


def _clean_up(job: JobState) -> None:
    """No process a step started outlives the job (background children included).

    A sandboxed step runs in its own PID namespace, which the kernel empties when the step's bwrap ends
    (the namespace's init dies with it, --die-with-parent): the clean-up waits until that init is gone or a
    zombie (read from /proc/<init>/stat, which the kernel allows only once every other process of the
    namespace is reaped), without scanning the machine's processes. The scan of every process for the
    job's marker is needed only for unsandboxed steps; a step's group whose namespace cannot be told (a warm
    sandbox) is looked into only while it still exists (a signal-0 probe)."""
    for group in job.process_groups:
        if wait_namespace_ended(group):
            continue
        if _group_exists(group.pgid):
            kill_group_if_marked(group.pgid, "MLYARD_JOB_RUN", job.run_id)
    if not job.sandbox.enabled:
        kill_marked("MLYARD_JOB_RUN", job.run_id)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a group of another user: not ours, but let the marked check decide
        return True
    return True


def _interrupt(job: JobState, reason: str) -> None:
    """Record a cancel or a job timeout; steps that still run get the job's cancel timeout."""
    if job.canceled:  # already stopping: running out of the cancel timeout changes nothing more
        return
    if reason == "job_timeout":
        job.timed_out = True
        job.message = f"the job ran longer than the maximum time of {job.spec.timeout_in_minutes} minutes"
    else:
        job.message = "the job was canceled"
    job.canceled = True
    job.status = "Canceled"
    job.deadline = time.monotonic() + job.spec.cancel_timeout_in_minutes * job.minute


def _check_interruptions(job: JobState) -> None:
    if job.canceled:
        return
    if time.monotonic() >= job.deadline:
        _interrupt(job, "job_timeout")
    elif job.reporter.cancel_requested():
        _interrupt(job, "canceled")


def _should_run(step: StepSpec, job: JobState) -> tuple[bool, Issue | None]:
    if not step.enabled or (job.canceled and time.monotonic() >= job.deadline):
        return False, None
    context = ExpressionContext(variables=job.variables.all(), job_status=job.status, canceled=job.canceled)
    try:
        return evaluate_condition(step.condition, context), None
    except ExpressionError as exc:
        return True, Issue("error", f"the condition '{step.condition}' could not be evaluated: {exc}")


def _named(step: StepSpec, job: JobState) -> StepSpec:
    """The step with the `$(...)` macros of its display name expanded with the job's variables at job start,
    as Azure DevOps names a job's steps (unknown names stay as written; secret values masked)."""
    if "$(" not in step.display_name:
        return step
    return dataclasses.replace(step, display_name=job.masker.mask(expand(job, step.display_name))[:1000])


def _run_step(step: StepSpec, job: JobState) -> None:
    _check_interruptions(job)
    for name in ("Agent.JobStatus", "System.JobStatus"):
        job.variables.put(name, job.status)
    run, problem = _should_run(step, job)
    if not run:
        job.log.write(step, f"Skipping step '{step.display_name}': condition '{step.condition}' is false"
                      if step.enabled else f"Skipping step '{step.display_name}': it is disabled")  # fmt: skip
        job.log.flush()
        job.reporter.step_finished(step, SKIPPED, [])
        return
    job.log.flush()
    job.reporter.step_started(step)
    job.log.write(step, f"##[section]Starting: {step.display_name or step.name}")
    if problem is not None:
        result, issues = FAILED, [problem]
    elif step.unsupported:  # valid Azure Pipelines this mlyard does not run: the step fails, as validate said
        result, issues = FAILED, [Issue("error", step.unsupported)]
    else:
        result, issues = _attempts(step, job)
    if result == FAILED and step.continue_on_error and not job.timed_out:
        result = SUCCEEDED_WITH_ISSUES
    for issue in issues:
        job.log.write(step, f"##[{issue.type}]{issue.message}")
    job.log.write(step, f"##[section]Finishing: {step.display_name or step.name}")
    job.log.flush()
    masked = [Issue(issue.type, job.masker.mask(issue.message)) for issue in issues]
    job.reporter.step_finished(step, result, masked)
    _settle(job, result)
    if result == FAILED and not job.message:
        errors = [issue.message for issue in masked if issue.type == "error"]
        job.message = f"step '{step.display_name or step.name}' failed" + (f": {errors[0]}" if errors else "")


def _settle(job: JobState, result: str) -> None:
    if job.canceled:
        return
    if result == FAILED:
        job.status = "Failed"
    elif result == SUCCEEDED_WITH_ISSUES and job.status == "Succeeded":
        job.status = "SucceededWithIssues"


def _attempts(step: StepSpec, job: JobState) -> tuple[str, list[Issue]]:
    """Run the step, again up to retryCountOnTaskFailure times while it fails (task steps only)."""
    tries = 1 + (max(step.retry_count_on_task_failure, 0) if step.kind != "checkout" else 0)
    for attempt in range(1, tries + 1):
        run = StepRun(step)
        result = _attempt(step, job, run)
        if result != FAILED or attempt == tries or job.canceled:
            return result, run.issues
        for issue in run.issues:
            job.log.write(step, f"##[{issue.type}]{issue.message}")
        job.log.write(step, f"Retrying '{step.display_name or step.name}': attempt {attempt + 1} of {tries}")
    raise AssertionError("unreachable")


def _attempt(step: StepSpec, job: JobState, run: StepRun) -> str:
    try:
        result = handler_for(step)(step, job, run)
    except StepError as exc:
        run.error(str(exc))
        result = FAILED
    except Interrupted as exc:
        result = _interrupted(step, job, run, exc.reason)
    except (OSError, MlyardError) as exc:  # e.g. a file that cannot be read, an artifact the server refused
        run.error(f"the agent could not run the step: {exc}")
        result = FAILED
    except Exception as exc:  # a bug in the agent fails the step, not the whole agent
        logger.exception("step %s failed inside the agent", step.id)
        run.error(f"the agent failed while running the step: {type(exc).__name__}: {exc}")
        result = FAILED
    if run.completed_result is not None and _RANK[run.completed_result] > _RANK.get(result, 0):
        result = run.completed_result
    return result


def _interrupted(step: StepSpec, job: JobState, run: StepRun, reason: str) -> str:
    if reason == "timeout":
        run.error(f"the step timed out after {step.timeout_in_minutes} minutes")
        return FAILED
    if job.canceled:  # an always() step that outlived the cancel timeout
        run.error(
            f"the step was stopped: the job's cancel timeout of {job.spec.cancel_timeout_in_minutes} minutes ran out"
        )
        return CANCELED
    _interrupt(job, reason)
    if reason == "job_timeout":
        run.error(job.message)
        return FAILED
    run.error("the step was canceled")
    return CANCELED
