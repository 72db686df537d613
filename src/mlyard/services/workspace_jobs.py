"""Jobs on deployed workspace code (`mlyard jobs run`): what a person does in a Databricks notebook.

A job copies the deployed version of `ml_apps/<app>/<branch>` (so a redeploy during the job changes
nothing under it), runs the entry point with the environment's MLflow settings, keeps its log, and
records its state, duration and the MLflow runs it started (tagged through MLFLOW_RUN_CONTEXT).

The entry point is user code: it runs in the step sandbox (mlyard.sandbox: the data directory hidden but
for the job's own folder and the environment's MLflow store folder, an allow-listed environment) and is
stopped after MLYARD_JOBS_TIMEOUT_MINUTES (default 60).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlyard.ci import states
from mlyard.db.engine import transaction
from mlyard.db.tables import WorkspaceJob
from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.names import check_branch_name, check_repo_name
from mlyard.sandbox import Sandbox, passed_environment, server_paths, store_paths
from mlyard.services import environments
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

log = logging.getLogger("mlyard.jobs")
TIMEOUT_ENV = "MLYARD_JOBS_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 60.0
KILL_GRACE_SECONDS = 5.0


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
    check_repo_name(app)
    check_branch_name(branch)
    environment = environments.get_environment(platform, env)
    deployed = open_workspace(environment["workspace_uri"]).show(app, branch)
    source = Path(deployed["path"]).resolve()
    script_rel = resolve_entrypoint(source, entrypoint).relative_to(source)
    with transaction(platform.sessions) as session:
        row = WorkspaceJob(
            environment=env,
            app=app,
            branch=branch,
            entrypoint=str(script_rel),
            args=list(args),
            state=states.QUEUED,
            commit=str(deployed.get("commit") or ""),
            requested_by=principal.username,
        )
        session.add(row)
        session.flush()
        job_id = row.id
    work = job_dir(platform, job_id)
    try:
        shutil.copytree(source, work / "code", symlinks=True)
    except OSError as exc:
        _finish(platform, job_id, None, f"copying the deployed code failed: {exc}", [])
        raise OperationFailed(f"job {job_id}: copying the deployed code failed: {exc}") from exc
    thread = threading.Thread(
        target=_run,
        args=(platform, job_id, environment, work, script_rel, list(args)),
        name=f"mlyard-job-{job_id}",
        daemon=True,
    )
    thread.start()
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


def _run(
    platform: Platform, job_id: int, environment: dict[str, Any], work: Path, script: Path, args: list[str]
) -> None:
    logfile = work / "job.log"
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        assert row is not None
        states.transition(row, states.RUNNING)
        app, commit = row.app, row.commit
    uri = environment["mlflow_tracking_uri"]
    env = {
        **passed_environment(),
        "HOME": str(work / "home"),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
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
    code, message = None, ""
    try:
        sandbox = Sandbox.detect(hidden=server_paths(platform.settings.home),
                                 unsandboxed=platform.settings.unsandboxed_steps)  # fmt: skip
        _prepare_registry(platform, environment, app)
        (work / "home").mkdir(exist_ok=True)
        argv = sandbox.command([sys.executable, str(script), *args], cwd=work / "code", work=[work],
                               writable=store_paths({"uri": uri}))  # fmt: skip
        with open(logfile, "ab") as out:
            out.write(f"$ python {script} {' '.join(args)}\n".encode())
            out.flush()
            code = _wait(subprocess.Popen(argv, cwd=work / "code", env=env, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        message = "" if code == 0 else f"the entry point exited with code {code}"
        if code is None:
            message = (f"the entry point ran longer than the maximum of {timeout_minutes():g} minutes "
                       f"({TIMEOUT_ENV}) and was stopped")  # fmt: skip
    except Exception as exc:  # the job fails with the reason; the server goes on
        log.exception("job %d failed to run", job_id)
        message = f"the job could not run: {exc}"
    _finish(platform, job_id, code, message, _mlflow_runs(uri, job_id))
    shutil.rmtree(work / "code", ignore_errors=True)
    shutil.rmtree(work / "home", ignore_errors=True)


def timeout_minutes() -> float:
    """The longest an entry point may run: MLYARD_JOBS_TIMEOUT_MINUTES of the server, default 60."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_MINUTES)
    except ValueError:
        return DEFAULT_TIMEOUT_MINUTES
    return value if value > 0 else DEFAULT_TIMEOUT_MINUTES


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    """The exit code, or None when the entry point ran out of time (its process group is then killed)."""
    try:
        return proc.wait(timeout=timeout_minutes() * 60)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return None


def _finish(platform: Platform, job_id: int, code: int | None, message: str, run_ids: list[str]) -> None:
    with transaction(platform.sessions) as session:
        row = session.get(WorkspaceJob, job_id)
        assert row is not None
        row.exit_code, row.message, row.mlflow_run_ids = code, message, run_ids
        states.transition(row, states.SUCCEEDED if code == 0 else states.FAILED)


def _mlflow_runs(uri: str, job_id: int) -> list[str]:
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
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
