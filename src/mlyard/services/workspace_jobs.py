"""Jobs on deployed workspace code (`mlyard jobs run`): what a person does in a Databricks notebook.

A job copies the deployed version of `ml_apps/<app>/<branch>` (so a redeploy during the job changes
nothing under it), runs the entry point with the environment's MLflow settings, keeps its log, and
records its state, duration and the MLflow runs it started (tagged through MLFLOW_RUN_CONTEXT).

The entry point is user code: it runs in the step sandbox (mlyard.sandbox: the data directory hidden but
for the job's own folder, an allow-listed environment) and is stopped after MLYARD_JOBS_TIMEOUT_MINUTES
(default 60). As on Databricks, it logs to MLflow through the environment's tracking server
(`<server>/mlflow/<env>`, which resolves the `mlflow-artifacts:/` locations of experiments created from a
laptop) with a token of its own: bound to the environment, issued when the job starts, revoked when it
ends and expiring at its timeout. It never opens the store's files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select

from mlyard.ci import states
from mlyard.db.engine import transaction
from mlyard.db.tables import WorkspaceJob
from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.names import check_branch_name, check_repo_name
from mlyard.sandbox import Sandbox, passed_environment, server_paths
from mlyard.services import auth, environment_groups, environments
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

log = logging.getLogger("mlyard.jobs")
TIMEOUT_ENV = "MLYARD_JOBS_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 60.0
KILL_GRACE_SECONDS = 5.0
CANCEL_POLL_SECONDS = 0.5
CANCEL_FILE = "cancel-requested"  # in the job's folder: written by `cancel`, seen by the waiting thread
PARAMETERS_FILE = "notebook-parameters.json"
EXIT_FILE = "notebook-exit"  # the value a notebook gave dbutils.notebook.exit
TASK_FILE = "task.json"  # the task as runs/submit described it
# How a failed job's message starts (Databricks' API tells them apart: a task error, a timeout, the platform).
EXITED_WITH = "the entry point exited with code"
RAN_TOO_LONG = "the entry point ran longer than the maximum"
COULD_NOT_RUN = "the job could not run"
CANCELED_BY = "canceled by"
# The job's token: what MLflow's REST API at /mlflow/<env> asks (api/mlflow_mount: reads, writes), and no more.
TOKEN_SCOPES = ["repo:read", "pipelines:run"]
TOKEN_MARGIN = timedelta(seconds=60)  # past the timeout and the kill grace: the token then expires by itself


def job_dir(platform: Platform, job_id: int) -> Path:
    return platform.settings.home / "jobs" / str(int(job_id))


def log_path(platform: Platform, job_id: int) -> Path:
    return job_dir(platform, job_id) / "job.log"


def resolve_entrypoint(code: Path, entrypoint: str) -> Path:
    """`train` -> src/<pkg>/notebooks/train.py (or src/<pkg>/train.py, train.py); a path must stay inside."""
    if entrypoint.endswith(".py") or "/" in entrypoint:
        candidate = (code / entrypoint).resolve()
        if not candidate.is_relative_to(code.resolve()) or not candidate.is_file():
            raise NotFound(f"entry point {entrypoint!r} is not a file of the deployed code")
        return candidate
    if not entrypoint.replace("_", "").replace("-", "").isalnum():
        raise InvalidInput(f"invalid entry point {entrypoint!r}: give a notebook name (e.g. train) or a .py path")
    for pattern in (f"src/*/notebooks/{entrypoint}.py", f"src/*/{entrypoint}.py", f"{entrypoint}.py"):
        found = sorted(code.glob(pattern))
        if found:
            return found[0]
    notebooks = sorted(p.stem for p in code.glob("src/*/notebooks/*.py") if p.stem != "__init__")
    raise NotFound(f"no entry point {entrypoint!r} in the deployed code; notebooks: {', '.join(notebooks) or 'none'}")


def start(
    platform: Platform, principal: Principal, *, env: str, app: str, branch: str, entrypoint: str, args: list[str]
) -> dict[str, Any]:
    """Queue and start a job; returns at once (follow it with its log)."""
    from mlyard.workspace import open_workspace

    principal.require("pipelines:run")
    principal.require_environment(env)
    check_repo_name(app)
    check_branch_name(branch)
    environment = environments.get_environment(platform, env)
    deployed = open_workspace(environment["workspace_uri"]).show(app, branch)
    source = Path(deployed["path"]).resolve()
    script_rel = resolve_entrypoint(source, entrypoint).relative_to(source)
    job_id = _record(platform, principal, env=env, app=app, branch=branch, entrypoint=str(script_rel),
                     args=args, commit=str(deployed.get("commit") or ""))  # fmt: skip
    work = job_dir(platform, job_id)
    try:
        shutil.copytree(source, work / "code", symlinks=True)
    except OSError as exc:
        _finish(platform, job_id, None, f"copying the deployed code failed: {exc}", [])
        raise OperationFailed(f"job {job_id}: copying the deployed code failed: {exc}") from exc
    launch = Launch(argv=(str(script_rel), *args), cwd=work / "code", label=f"python {script_rel} {' '.join(args)}")
    _start_thread(platform, job_id, environment, launch)
    return get(platform, job_id)


@dataclass(frozen=True)
class Launch:
    """How a job's process starts: `python ARGV...` in `cwd`, `readable` bound read-only in the sandbox."""

    argv: tuple[str, ...]
    cwd: Path
    label: str
    readable: tuple[Path, ...] = ()


def start_in_workspace(
    platform: Platform,
    principal: Principal,
    *,
    env: str,
    root: Path,
    script: Path,
    entrypoint: str,
    app: str = "",
    parameters: dict[str, str] | None = None,
    args: list[str] | tuple[str, ...] = (),
    wheel_entry: tuple[str, str] | None = None,  # (package_name, entry_point)
    task: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a job on a file of the live workspace (Databricks' runs/submit): `script` (inside `root`) runs in
    its own folder; with `parameters` it runs as a notebook (`notebook_runner.py`: dbutils.widgets and
    dbutils.notebook.exit); with `wheel_entry` `script` is a wheel whose entry point runs (`wheel_runner.py`);
    else it runs as a Python file with `args`. `task` is kept beside the log (TASK_FILE)."""
    from mlyard.workspace import notebook_runner, wheel_runner

    principal.require("pipelines:run")
    principal.require_environment(env)
    environment = environments.get_environment(platform, env)
    job_id = _record(platform, principal, env=env, app=app, branch="", entrypoint=entrypoint, args=list(args),
                     commit="")  # fmt: skip
    work = job_dir(platform, job_id)
    work.mkdir(parents=True, exist_ok=True)
    if task is not None:  # how the client described the task (Databricks' runs/submit), shown back by runs/get
        (work / TASK_FILE).write_text(json.dumps(task), encoding="utf-8")
    if parameters is not None:
        (work / PARAMETERS_FILE).write_text(json.dumps(parameters), encoding="utf-8")
        argv: tuple[str, ...] = (str(Path(notebook_runner.__file__).resolve()), str(work / PARAMETERS_FILE),
                                 str(work / EXIT_FILE), str(script))  # fmt: skip
    elif wheel_entry is not None:  # `script` is a wheel: run its entry point
        argv = (str(Path(wheel_runner.__file__).resolve()), str(script), *wheel_entry, *args)
    else:
        argv = (str(script), *args)
    launch = Launch(argv=argv, cwd=script.parent, label=f"python {entrypoint} {' '.join(args)}", readable=(root,))
    _start_thread(platform, job_id, environment, launch)
    return get(platform, job_id)


def _record(
    platform: Platform, principal: Principal, *, env: str, app: str, branch: str, entrypoint: str, args: list[str],
    commit: str,
) -> int:  # fmt: skip
    with transaction(platform.sessions) as session:
        row = WorkspaceJob(environment=env, app=app, branch=branch, entrypoint=entrypoint, args=list(args),
                           state=states.QUEUED, commit=commit, requested_by=principal.username)  # fmt: skip
        session.add(row)
        session.flush()
        return int(row.id)


def _start_thread(platform: Platform, job_id: int, environment: dict[str, Any], launch: Launch) -> None:
    thread = threading.Thread(
        target=_run, args=(platform, job_id, environment, job_dir(platform, job_id), launch),
        name=f"mlyard-job-{job_id}", daemon=True,
    )  # fmt: skip
    thread.start()


def cancel(platform: Platform, principal: Principal, job_id: int) -> dict[str, Any]:
    """Cancel a job: a queued one at once, a running one by stopping its process group (asynchronously)."""
    principal.require("pipelines:run")
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        if row is None:
            raise NotFound(f"job {job_id} not found; list jobs with `mlyard jobs list`")
        if row.state == states.QUEUED:
            row.message = f"{CANCELED_BY} {principal.username}"
            states.transition(row, states.CANCELED)
        elif row.state == states.RUNNING:
            folder = job_dir(platform, job_id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / CANCEL_FILE).write_text(principal.username, encoding="utf-8")
    return get(platform, job_id)


def _prepare_registry(platform: Platform, environment: dict[str, Any], app: str) -> None:
    """Initialise the environment's store once and give the app's experiment an artifact folder there."""
    from mlyard.services.models import registry

    reg = registry(platform, environment["name"])
    uri = environment["mlflow_tracking_uri"]
    if uri.startswith("sqlite:///"):
        name = f"/ml_apps/{app}"
        if reg.client.get_experiment_by_name(name) is None:
            artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / app
            reg.client.create_experiment(name, artifact_location=artifacts.as_uri())


def _run(platform: Platform, job_id: int, environment: dict[str, Any], work: Path, launch: Launch) -> None:
    logfile = work / "job.log"
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        assert row is not None
        if row.state != states.QUEUED:  # canceled before it started
            shutil.rmtree(work / "code", ignore_errors=True)
            return
        states.transition(row, states.RUNNING)
        app, commit = row.app, row.commit
    env = {
        **passed_environment(),
        "HOME": str(work / "home"),
        "PYTHONPATH": "src",
        "PYTHONUNBUFFERED": "1",
        "MLYARD_ENVIRONMENT": environment["name"],
        "MLYARD_JOB_ID": str(job_id),
        "MLYARD_AGENT_MARK": str(platform.settings.home),  # a restarted server kills what is left
        "MLFLOW_RUN_CONTEXT": json.dumps(
            {
                "mlyard.job_id": str(job_id),
                "mlyard.app": app,
                "mlyard.environment": environment["name"],
                "mlyard.commit": commit,
            }
        ),
    }
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    code, message, canceled = None, "", False
    try:
        sandbox = Sandbox.detect(hidden=server_paths(platform.settings.home),
                                 unsandboxed=platform.settings.unsandboxed_steps)  # fmt: skip
        if app:
            _prepare_registry(platform, environment, app)
        env.update(_mlflow_variables(platform, environment, job_id))
        (work / "home").mkdir(exist_ok=True)
        with open(logfile, "ab") as out:
            out.write(f"$ {launch.label}\n".encode())
            out.flush()
            warm = _run_warm(platform, job_id, work, launch, env, out) if sandbox.enabled else None
            if warm is not None:
                code, reason = warm
            else:
                argv = sandbox.command([sys.executable, *launch.argv], cwd=launch.cwd, work=[work],
                                       readable=launch.readable)  # fmt: skip
                code, reason = _wait(subprocess.Popen(argv, cwd=launch.cwd, env=env, stdin=subprocess.DEVNULL,
                                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True),
                                     work / CANCEL_FILE)  # fmt: skip
        message = "" if code == 0 else f"{EXITED_WITH} {code}"
        if reason == "timeout":
            message = (f"{RAN_TOO_LONG} of {timeout_minutes():g} minutes "
                       f"({TIMEOUT_ENV}) and was stopped")  # fmt: skip
        elif reason == "canceled":
            canceled = True
            who = (work / CANCEL_FILE).read_text(encoding="utf-8", errors="replace")[:64]
            message = f"{CANCELED_BY} {who}"
    except Exception as exc:  # the job fails with the reason; the server goes on
        log.exception("job %d failed to run", job_id)
        message = f"{COULD_NOT_RUN}: {exc}"
    _revoke_token(platform, environment["name"], job_id)
    _finish(platform, job_id, code, message, _mlflow_runs(platform, environment, job_id), canceled=canceled)
    platform.job_ended.set()
    shutil.rmtree(work / "code", ignore_errors=True)
    shutil.rmtree(work / "home", ignore_errors=True)


def _run_warm(
    platform: Platform, job_id: int, work: Path, launch: Launch, env: dict[str, str], out: BinaryIO
) -> tuple[int | None, str] | None:  # fmt: skip
    """Run the entry point in a warm sandbox of the server (the ML stack already imported: docs/jobs.md), as
    `_wait` answers; None when none is ready, another job holds their slot, or the job needs more than its folder
    (a file of the live workspace). The job's folder is moved into the slot for the run (a symbolic link at its
    place: its log, cancel file and API answers stay where they are) and back after: the sandbox, started before
    the job was known, sees the slot only, and the slot holds this one job's folder."""
    pool = platform.job_sandboxes
    if pool is None or launch.readable or not platform.job_slot.acquire(blocking=False):
        return None
    try:
        proc = pool.take()
        if proc is None:
            return None
        pool.hold()
        inside = pool.slot / work.name
        try:
            os.rename(work, inside)
            os.symlink(inside, work)
        except OSError:  # the job runs cold: its folder back in its place, the sandbox stopped
            with contextlib.suppress(OSError):
                os.rename(inside, work)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pool.release()
            return None
        try:
            log.info("job %d runs in a warm sandbox (its replacement starts after it, on an idle core)", job_id)
            pool.give(proc, ["python", *launch.argv], cwd=inside / launch.cwd.relative_to(work),
                      env={**env, "HOME": str(inside / "home")})  # paths as the sandbox sees them  # fmt: skip
            pumps = [threading.Thread(target=_pump, args=(stream, out), name=f"mlyard-job-{job_id}-log", daemon=True)
                     for stream in (proc.stdout, proc.stderr) if stream is not None]  # fmt: skip
            for pump in pumps:
                pump.start()
            result = _wait(proc, work / CANCEL_FILE)
            for pump in pumps:
                pump.join(timeout=10)
            return result
        finally:
            work.unlink()
            os.rename(inside, work)
            pool.check_empty()
            pool.release()
    finally:
        platform.job_slot.release()


def _pump(stream: BinaryIO, out: BinaryIO) -> None:
    """Copy a warm sandbox's output into the job's log as it comes (until the sandbox's end closes it)."""
    with contextlib.suppress(OSError, ValueError):
        while chunk := os.read(stream.fileno(), 65536):
            out.write(chunk)
            out.flush()
    with contextlib.suppress(OSError):
        stream.close()


def _mlflow_variables(platform: Platform, environment: dict[str, Any], job_id: int) -> dict[str, str]:
    """MLflow's settings of the job: the environment's tracking server at `<server>/mlflow/<env>` with the
    job's own token (what a Databricks job gets: the workspace's tracking URI and a token of the run), or the
    environment's remote MLflow URL as it is."""
    from mlyard.registry.store import is_remote

    uri = environment["mlflow_tracking_uri"]
    if is_remote(uri):
        return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    served = f"{platform.settings.url}/mlflow/{environment['name']}"
    return {"MLFLOW_TRACKING_URI": served, "MLFLOW_REGISTRY_URI": served,
            "MLFLOW_TRACKING_TOKEN": _issue_token(platform, environment["name"], job_id)}  # fmt: skip


def _issue_token(platform: Platform, env: str, job_id: int) -> str:
    """A token of the environment's service identity for this job only: bound to `env`, expiring shortly after
    the job's timeout (revoked as soon as the job ends: _revoke_token)."""
    expires = datetime.now(UTC) + timedelta(minutes=timeout_minutes(), seconds=KILL_GRACE_SECONDS) + TOKEN_MARGIN
    with transaction(platform.sessions) as session:
        return auth.issue_service_token(
            session, username=environment_groups.service_user(env), name=auth.workspace_job_token_name(job_id),
            scopes=TOKEN_SCOPES, actor=f"job {job_id}", expires_at=expires,
        )  # fmt: skip


def _revoke_token(platform: Platform, env: str, job_id: int) -> None:
    try:
        with transaction(platform.sessions) as session:
            auth.revoke_service_token(session, username=environment_groups.service_user(env),
                                      name=auth.workspace_job_token_name(job_id), actor=f"job {job_id}")  # fmt: skip
    except Exception:  # it expires by itself shortly after the job's timeout
        log.exception("revoking the token of job %d failed", job_id)


def timeout_minutes() -> float:
    """The longest an entry point may run: MLYARD_JOBS_TIMEOUT_MINUTES of the server, default 60."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_MINUTES)
    except ValueError:
        return DEFAULT_TIMEOUT_MINUTES
    return value if value > 0 else DEFAULT_TIMEOUT_MINUTES


def _wait(proc: subprocess.Popen[bytes], cancel_file: Path) -> tuple[int | None, str]:
    """(exit code, "") or (None, "timeout" | "canceled") when the entry point ran out of time or was canceled
    (its process group is then stopped: SIGTERM, SIGKILL after KILL_GRACE_SECONDS)."""
    deadline = time.monotonic() + timeout_minutes() * 60
    reason = "timeout"
    while time.monotonic() < deadline:
        try:
            return proc.wait(timeout=min(CANCEL_POLL_SECONDS, max(deadline - time.monotonic(), 0.01))), ""
        except subprocess.TimeoutExpired:
            if cancel_file.exists():
                reason = "canceled"
                break
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    return None, reason


def _finish(
    platform: Platform, job_id: int, code: int | None, message: str, run_ids: list[str], *, canceled: bool = False
) -> None:
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        assert row is not None
        row.exit_code, row.message, row.mlflow_run_ids = code, message, run_ids
        states.transition(row, states.CANCELED if canceled else states.SUCCEEDED if code == 0 else states.FAILED)


def _mlflow_runs(platform: Platform, environment: dict[str, Any], job_id: int) -> list[str]:
    """The MLflow runs the job logged (tagged with its id), through the environment's registry client: its
    MLflow server's REST API when the server runs one (the server imports no MLflow for it), else MLflow's."""
    from mlyard.services.models import registry

    try:
        client = registry(platform, environment["name"]).client
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, filter_string=f"tags.`mlyard.job_id` = '{job_id}'")
        return [r.info.run_id for r in runs]
    except Exception:  # the registry may be remote and unreachable; the job result stands
        log.exception("listing the MLflow runs of job %d failed", job_id)
        return []


def recover_after_restart(platform: Platform) -> int:
    with transaction(platform.sessions) as session:
        rows = list(session.scalars(select(WorkspaceJob).where(WorkspaceJob.state.in_(states.ACTIVE))))
        for row in rows:
            row.message = "the server stopped while the job was running"
            states.transition(row, states.FAILED)
            auth.revoke_service_token(session, username=environment_groups.service_user(row.environment),
                                      name=auth.workspace_job_token_name(row.id), actor="server")  # fmt: skip
        return len(rows)


def get(platform: Platform, job_id: int) -> dict[str, Any]:
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        if row is None:
            raise NotFound(f"job {job_id} not found; list jobs with `mlyard jobs list`")
        return job_dict(row)


def list_jobs(
    platform: Platform, *, env: str | None = None, app: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    with transaction(platform.sessions) as session:
        query = select(WorkspaceJob).order_by(WorkspaceJob.id.desc()).limit(limit)
        if env:
            query = query.where(WorkspaceJob.environment == env)
        if app:
            query = query.where(WorkspaceJob.app == app)
        return [job_dict(r) for r in session.scalars(query)]


def job_dict(row: WorkspaceJob) -> dict[str, Any]:
    end = row.finished_at or (datetime.now(UTC) if row.started_at else None)
    duration = round((end - row.started_at).total_seconds(), 3) if row.started_at and end else None
    return {
        "id": row.id,
        "environment": row.environment,
        "app": row.app,
        "branch": row.branch,
        "entrypoint": row.entrypoint,
        "args": row.args,
        "state": row.state,
        "exit_code": row.exit_code,
        "message": row.message,
        "commit": row.commit,
        "requested_by": row.requested_by,
        "mlflow_run_ids": row.mlflow_run_ids,
        "queued_at": row.queued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "duration_seconds": duration,
    }
