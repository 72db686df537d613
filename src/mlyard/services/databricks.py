"""Databricks' Workspace and Jobs APIs over an environment's workspace and workspace jobs.

The objects are those of `mlyard.workspace.objects` on the environment's workspace folder; a submitted run
is a workspace job (`services.workspace_jobs`) running a notebook or Python file of the live workspace.
This module maps the job's states to Databricks' vocabulary (life-cycle state, result state,
termination code) and reads a run's output (the notebook's exit value, the log's tail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlyard.ci import states
from mlyard.errors import InvalidInput, NotFound
from mlyard.names import check_repo_name
from mlyard.services import environments, workspace_jobs
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.workspace import LocalWorkspace, open_workspace
from mlyard.workspace.notebook_runner import MAX_EXIT_BYTES
from mlyard.workspace.objects import DIRECTORY, NOTEBOOK, ObjectInfo, WorkspaceObjects

MAX_PARAMETERS_BYTES = 10_000  # base_parameters / parameters of one task, as JSON (Databricks' own limit)
MAX_OUTPUT_LOG_BYTES = 64 * 1024  # the tail of the log that runs/get-output returns
MAX_LIST_LIMIT = 25  # runs one runs/list page holds (Databricks' maximum)
MAX_LISTED_JOBS = 10_000  # the newest jobs runs/list looks at
TASK_KINDS = ("notebook_task", "spark_python_task", "python_wheel_task")


def objects(platform: Platform, env: str) -> WorkspaceObjects:
    """The Workspace API view of an environment's workspace (a local folder)."""
    environment = environments.get_environment(platform, env)
    workspace = open_workspace(environment["workspace_uri"])
    if not isinstance(workspace, LocalWorkspace):
        raise InvalidInput(f"environment {env!r} has the workspace {workspace.uri}, which is not a local folder: "
                           "the Databricks API serves local workspaces only")  # fmt: skip
    return WorkspaceObjects(workspace.root)


@dataclass(frozen=True)
class TaskSpec:
    """One task of runs/submit, checked: its kind, workspace path and parameters."""

    task_key: str
    kind: str  # notebook_task | spark_python_task | python_wheel_task
    path: str  # the notebook, the Python file, or the wheel (the task's one `whl` library)
    parameters: dict[str, str] = field(default_factory=dict)  # notebook_task.base_parameters
    args: tuple[str, ...] = ()  # spark_python_task.parameters, python_wheel_task.parameters (+ named ones)
    wheel_entry: tuple[str, str] | None = None  # python_wheel_task: (package_name, entry_point)


@dataclass(frozen=True)
class RunState:
    life_cycle_state: str  # PENDING, RUNNING, TERMINATED, INTERNAL_ERROR
    result_state: str | None  # SUCCESS, FAILED, TIMEDOUT, CANCELED
    state_message: str
    user_cancelled_or_timedout: bool
    termination_code: str | None  # SUCCESS, RUN_EXECUTION_ERROR, USER_CANCELED, INTERNAL_ERROR, ...
    termination_type: str | None  # SUCCESS, CLIENT_ERROR, INTERNAL_ERROR


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    run_name: str
    task_key: str
    task: dict[str, Any]  # {"notebook_task": {...}}, {"spark_python_task": {...}}, ... (+ "libraries")
    state: RunState
    creator_user_name: str
    start_time: int  # ms since the epoch (Databricks' unit)
    end_time: int  # 0 while running
    run_duration: int  # ms


@dataclass(frozen=True)
class RunOutput:
    run: RunRecord
    notebook_result: str | None
    notebook_truncated: bool
    logs: str | None
    logs_truncated: bool
    error: str | None
    error_trace: str | None


def check_task(
    task_key: str, kind: str, path: str, parameters: Any, *, wheel_entry: tuple[str, str] | None = None
) -> TaskSpec:
    size = len(json.dumps(parameters or {}))
    if size > MAX_PARAMETERS_BYTES:
        raise InvalidInput(f"the parameters of task {task_key!r} take {size} bytes as JSON; at most "
                           f"{MAX_PARAMETERS_BYTES} are allowed")  # fmt: skip
    if kind == "notebook_task":
        return TaskSpec(task_key, kind, path, parameters={str(k): str(v) for k, v in dict(parameters or {}).items()})
    return TaskSpec(task_key, kind, path, args=tuple(str(a) for a in parameters or ()), wheel_entry=wheel_entry)


def submit(platform: Platform, principal: Principal, env: str, *, run_name: str, task: TaskSpec) -> int:
    """Start a one-time run of a notebook or Python file of the environment's workspace; returns its run id."""
    principal.require("pipelines:run")
    tree = objects(platform, env)
    found = tree.get_status(task.path)
    _check_runnable(task, found)
    parts = [p for p in found.path.split("/") if p]
    app = parts[1] if len(parts) > 2 and parts[0] == "ml_apps" and _is_app(parts[1]) else ""
    if task.kind == "notebook_task":
        described = {"notebook_path": found.path, "source": "WORKSPACE", "base_parameters": task.parameters}
    elif task.wheel_entry is not None:
        package, entry = task.wheel_entry
        described = {"package_name": package, "entry_point": entry, "parameters": list(task.args)}
    else:
        described = {"python_file": found.path, "source": "WORKSPACE", "parameters": list(task.args)}
    job = workspace_jobs.start_in_workspace(
        platform, principal, env=env, root=tree.root, script=found.disk.resolve(), entrypoint=found.path, app=app,
        parameters=task.parameters if task.kind == "notebook_task" else None, args=task.args,
        wheel_entry=task.wheel_entry,
        task={"run_name": run_name, "task_key": task.task_key, task.kind: described,
              **({"libraries": [{"whl": found.path}]} if task.wheel_entry else {})},
    )  # fmt: skip
    return int(job["id"])


def _check_runnable(task: TaskSpec, found: ObjectInfo) -> None:
    if task.kind == "notebook_task":
        if found.object_type != NOTEBOOK:
            raise InvalidInput(f"notebook_task.notebook_path {found.path} is a {found.object_type.lower()}, not a "
                               "notebook (a notebook's source starts with '# Databricks notebook source')")  # fmt: skip
        if found.language != "PYTHON":
            raise InvalidInput(f"notebook {found.path} is a {found.language} notebook: only Python notebooks run here")
        return
    if task.kind == "python_wheel_task":
        if found.object_type == DIRECTORY or not found.disk.name.endswith(".whl"):
            raise InvalidInput(f"the library {found.path} of python_wheel_task is not a wheel (.whl)")
        return
    if found.object_type == DIRECTORY or not found.disk.name.endswith(".py"):
        raise InvalidInput(f"spark_python_task.python_file {found.path} is not a Python file (.py)")


def _is_app(name: str) -> bool:
    try:
        check_repo_name(name)
    except InvalidInput:
        return False
    return True


def get_run(platform: Platform, env: str, run_id: int) -> RunRecord:
    job = workspace_jobs.get(platform, run_id)
    if job["environment"] != env:
        raise NotFound(f"Run {run_id} does not exist in the workspace of environment {env!r}")
    return _record(platform, job)


def list_runs(
    platform: Platform, env: str, *, offset: int, limit: int, active_only: bool, completed_only: bool
) -> tuple[list[RunRecord], bool]:
    """A page of the environment's runs (newest first) and whether more follow."""
    if active_only and completed_only:
        raise InvalidInput("active_only and completed_only cannot both be true")
    limit = min(max(limit or 20, 1), MAX_LIST_LIMIT)
    filtered = active_only or completed_only  # filtered in memory: read up to MAX_LISTED_JOBS rows
    rows = workspace_jobs.list_jobs(platform, env=env, limit=MAX_LISTED_JOBS if filtered else offset + limit + 1)
    if active_only:
        rows = [r for r in rows if not states.is_final(r["state"])]
    if completed_only:
        rows = [r for r in rows if states.is_final(r["state"])]
    page = rows[offset : offset + limit]
    return [_record(platform, r) for r in page], len(rows) > offset + limit


def cancel_run(platform: Platform, principal: Principal, env: str, run_id: int) -> None:
    get_run(platform, env, run_id)
    workspace_jobs.cancel(platform, principal, run_id)


def run_output(platform: Platform, env: str, run_id: int) -> RunOutput:
    run = get_run(platform, env, run_id)
    folder = workspace_jobs.job_dir(platform, run_id)
    result, truncated = None, False
    exit_file = folder / workspace_jobs.EXIT_FILE
    if "notebook_task" in run.task and exit_file.is_file():
        data = exit_file.read_bytes()
        result, truncated = data.decode("utf-8", "replace"), len(data) >= MAX_EXIT_BYTES
    text, logs_truncated = _tail(workspace_jobs.log_path(platform, run_id))
    failed = run.state.result_state not in (None, "SUCCESS")
    return RunOutput(
        run=run,
        notebook_result=result,
        notebook_truncated=truncated,
        logs=None if "notebook_task" in run.task else text,
        logs_truncated=False if "notebook_task" in run.task else logs_truncated,
        error=run.state.state_message if failed else None,
        error_trace=text if failed else None,
    )


def _tail(path: Path) -> tuple[str, bool]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(max(size - MAX_OUTPUT_LOG_BYTES, 0))
            return handle.read().decode("utf-8", "replace"), size > MAX_OUTPUT_LOG_BYTES
    except OSError:
        return "", False


def run_state(job: dict[str, Any]) -> RunState:
    """A workspace job's state in Databricks' words (docs/databricks.md, "States")."""
    state, message = job["state"], str(job.get("message") or "")
    if state == states.QUEUED:
        return RunState("PENDING", None, "Waiting to start", False, None, None)
    if state == states.RUNNING:
        return RunState("RUNNING", None, "In run", False, None, None)
    if state == states.SUCCEEDED:
        return RunState("TERMINATED", "SUCCESS", "", False, "SUCCESS", "SUCCESS")
    if state == states.CANCELED:
        return RunState("TERMINATED", "CANCELED", message or "Run canceled", True, "USER_CANCELED", "SUCCESS")
    if message.startswith(workspace_jobs.RAN_TOO_LONG):
        return RunState("TERMINATED", "TIMEDOUT", message, True, "CANCELED", "SUCCESS")
    if job.get("exit_code") is not None:
        return RunState("TERMINATED", "FAILED", message, False, "RUN_EXECUTION_ERROR", "CLIENT_ERROR")
    return RunState("INTERNAL_ERROR", "FAILED", message or "the job failed", False, "INTERNAL_ERROR", "INTERNAL_ERROR")


def _ms(value: str | None) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000) if value else 0


def _record(platform: Platform, job: dict[str, Any]) -> RunRecord:
    described = _task_file(platform, int(job["id"]))
    if not described:  # a job of `mlyard jobs run`: its entry point in the deployed branch
        path = f"/ml_apps/{job['app']}/{job['branch']}/{job['entrypoint']}"
        task = {"python_file": path, "source": "WORKSPACE", "parameters": job["args"]}
        described = {"run_name": f"jobs run {job['entrypoint']}", "task_key": "main", "spark_python_task": task}
    task = {k: v for k, v in described.items() if k in (*TASK_KINDS, "libraries")}
    start, end = _ms(job["started_at"] or job["queued_at"]), _ms(job["finished_at"])
    return RunRecord(
        run_id=int(job["id"]),
        run_name=str(described.get("run_name") or ""),
        task_key=str(described.get("task_key") or "main"),
        task=task,
        state=run_state(job),
        creator_user_name=str(job["requested_by"]),
        start_time=start,
        end_time=end,
        run_duration=int((job["duration_seconds"] or 0) * 1000),
    )


def _task_file(platform: Platform, job_id: int) -> dict[str, Any]:
    try:
        data = json.loads((workspace_jobs.job_dir(platform, job_id) / workspace_jobs.TASK_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
