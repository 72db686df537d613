"""Registered pipelines: create, list (a tree by folder), show, delete; variables set outside YAML."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from mlyard.ci import sources
from mlyard.ci.schedules import ScheduleFire
from mlyard.db.engine import transaction
from mlyard.db.tables import Permission, Pipeline, PipelineVariable, Repo, Run, Schedule
from mlyard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mlyard.names import check_folder, check_pipeline_name, check_repo_name, check_variable_name
from mlyard.pipelines.schedules import next_fires, parse_cron
from mlyard.services import audit, secrets
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.views import PipelineView, RunBrief, ScheduleView, VariableView, state


def create_pipeline(
    platform: Platform, principal: Principal, *, name: str, repo: str, yaml_path: str, folder: str = ""
) -> PipelineView:
    """Register `yaml_path` of `repo`; the file must exist and be valid on the default branch (if any)."""
    principal.require("repo:write")
    check_pipeline_name(name)
    check_repo_name(repo)
    folder = check_folder(folder)
    yaml_path = yaml_path.strip().lstrip("/")
    exists = Conflict(f"pipeline {name!r} already exists; pick another name or delete it first")
    with transaction(platform.sessions) as session:
        repo_row = session.scalars(select(Repo).where(Repo.name == repo)).first()
        if repo_row is None:
            raise NotFound(f"repository {repo!r} not found; list repositories with `mlyard repos list`")
        if session.scalars(select(Pipeline).where(Pipeline.name == name)).first():
            raise exists
        default_ref = f"refs/heads/{repo_row.default_branch}"
    head = sources.resolve_commit(platform, repo, default_ref) if _has_ref(platform, repo, default_ref) else None
    if head is not None:
        sources.load_at(platform, repo, head, yaml_path)  # raises NotFound / PipelineError
    try:
        with transaction(platform.sessions) as session:
            row = Pipeline(
                name=name,
                folder=folder,
                repo=repo,
                yaml_path=yaml_path,
                created_by=principal.username,
                owner_id=principal.user_id,
            )
            session.add(row)
            audit.record(session, "pipeline.created", actor=principal.username, target=name, repo=repo)
            session.flush()
            return pipeline_view(row, None)
    except IntegrityError:  # registered at the same time by another request
        raise exists from None


def _has_ref(platform: Platform, repo: str, ref: str) -> bool:
    from mlyard.git.repos import resolve

    return resolve(sources.bare_repo(platform, repo), ref) is not None


def list_pipelines(platform: Platform, *, folder: str | None = None, repo: str | None = None) -> list[PipelineView]:
    """Pipelines ordered by folder and name, each with its last run."""
    with transaction(platform.sessions) as session:
        query = select(Pipeline).options(joinedload(Pipeline.owner)).order_by(Pipeline.folder, Pipeline.name)
        if repo:
            query = query.where(Pipeline.repo == repo)
        rows = list(session.scalars(query))
        if folder:
            prefix = check_folder(folder)
            rows = [r for r in rows if r.folder == prefix or r.folder.startswith(prefix + "/")]
        last = _last_runs(session, [r.id for r in rows])
        return [pipeline_view(r, last.get(r.id)) for r in rows]


def _last_runs(session: Session, ids: list[int]) -> dict[int, Run]:
    if not ids:
        return {}
    newest = (
        select(Run.pipeline_id, func.max(Run.id).label("rid"))
        .where(Run.pipeline_id.in_(ids))
        .group_by(Run.pipeline_id)
        .subquery()
    )
    runs = session.scalars(select(Run).join(newest, Run.id == newest.c.rid))
    return {r.pipeline_id: r for r in runs}


def get_row(session: Session, name: str) -> Pipeline:
    row = session.scalars(select(Pipeline).where(Pipeline.name == name)).first()
    if row is None:
        raise NotFound(f"pipeline {name!r} not found; list pipelines with `mlyard pipelines list`")
    return row


def show_pipeline(platform: Platform, name: str) -> PipelineView:
    with transaction(platform.sessions) as session:
        row = get_row(session, name)
        info = pipeline_view(row, _last_runs(session, [row.id]).get(row.id))
        info.variables = [
            variable_view(v)
            for v in session.scalars(
                select(PipelineVariable).where(PipelineVariable.pipeline_id == row.id).order_by(PipelineVariable.name)
            )
        ]
        info.permissions = [
            f"{p.kind}:{p.resource}"
            for p in session.scalars(
                select(Permission)
                .where(Permission.pipeline_id == row.id)
                .order_by(Permission.kind, Permission.resource)
            )
        ]
        recent = session.scalars(select(Run).where(Run.pipeline_id == row.id).order_by(Run.id.desc()).limit(10))
        info.recent_runs = [run_brief(r) for r in recent]
        info.schedules = schedule_views(session, row.id, datetime.now(UTC))
        return info


NEXT_FIRES = 3  # next fire times shown per schedule


def schedule_views(session: Session, pipeline_id: int, now: datetime) -> list[ScheduleView]:
    """The active schedules of a pipeline (as the server last read them from each branch), by branch."""
    rows = session.scalars(
        select(Schedule)
        .where(Schedule.pipeline_id == pipeline_id, Schedule.active)
        .order_by(Schedule.branch, Schedule.id)
    )
    views = []
    for row in rows:
        fires = next_fires(parse_cron(row.cron), max(now, row.checked_at), NEXT_FIRES)
        views.append(
            ScheduleView(
                display_name=row.display_name,
                cron=row.cron,
                branch=row.branch,
                always=row.always,
                batch=row.batch,
                next_fires=[fire.isoformat().replace("+00:00", "Z") for fire in fires],
                last_fire_at=row.last_fire_at.isoformat() if row.last_fire_at else None,
                last_outcome=row.last_outcome,
            )
        )
    return views


def run_schedules(
    platform: Platform, principal: Principal, name: str, schedule: str | None = None
) -> list[ScheduleFire]:
    """Admin/testing hook: fire the pipeline's schedules now, as if due (ci.schedules.ScheduleRunner.fire_now).
    Returns the ScheduleFire of each schedule and branch."""
    principal.require("admin")
    if schedule is not None and len(schedule) > 255:
        raise InvalidInput("schedule: at most 255 characters (a displayName or a cron)")
    if platform.orchestrator is None:
        raise Conflict("schedules run only in a running server: start it with `mlyard server`")
    with transaction(platform.sessions) as session:
        pipeline_id = get_row(session, name).id
        known = session.scalars(select(Schedule.id).where(Schedule.pipeline_id == pipeline_id, Schedule.active)).first()
    if known is None:
        raise NotFound(f"pipeline {name!r} has no schedule the server has read yet: its YAML on a branch needs a "
                       "`schedules:` section (`mlyard pipelines show` lists them)")  # fmt: skip
    fires: list[ScheduleFire] = platform.orchestrator.schedules.fire_now(pipeline_id, schedule)
    if schedule is not None and not fires:
        raise NotFound(f"pipeline {name!r} has no active schedule {schedule!r}; `mlyard pipelines show {name}` "
                       "lists them")  # fmt: skip
    platform.orchestrator.notify()
    return fires


def check_manager(session: Session, principal: Principal, row: Pipeline, action: str) -> None:
    """Only the pipeline's owner, its repository's owner or an administrator may delete it or change its
    variables (a pipeline's secret variables reach every run of it)."""
    if principal.has("admin") or (row.owner_id is not None and row.owner_id == principal.user_id):
        return
    repo_owner = session.scalars(select(Repo.created_by).where(Repo.name == row.repo)).first()
    if repo_owner and repo_owner == principal.username:
        return
    owner = row.owner.username if row.owner is not None else None
    who = f"its owner ({owner})" if owner else "its owner"
    raise PermissionDenied(
        f"only {who}, the owner of repository {row.repo!r}"
        + (f" ({repo_owner})" if repo_owner else "")
        + f" or an administrator may {action} pipeline {row.name!r}: ask one of them"
    )


def delete_pipeline(platform: Platform, principal: Principal, name: str) -> PipelineView:
    principal.require("repo:write")
    with transaction(platform.sessions) as session:
        row = get_row(session, name)
        check_manager(session, principal, row, "delete")
        info = pipeline_view(row, None)
        run_ids = list(session.scalars(select(Run.id).where(Run.pipeline_id == row.id)))
        session.delete(row)
        audit.record(session, "pipeline.deleted", actor=principal.username, target=name)
    for run_id in run_ids:
        shutil.rmtree(platform.settings.home / "runs" / str(run_id), ignore_errors=True)
    return info


def set_variable(
    platform: Platform, principal: Principal, pipeline: str, name: str, value: str, *, secret: bool = False
) -> VariableView:
    principal.require("repo:write")
    check_variable_name(name)
    with transaction(platform.sessions) as session:
        row = get_row(session, pipeline)
        check_manager(session, principal, row, "change the variables of")
        var = session.scalars(
            select(PipelineVariable).where(PipelineVariable.pipeline_id == row.id, PipelineVariable.name == name)
        ).first()
        stored = secrets.encrypt(platform, value) if secret else value
        if var is None:
            var = PipelineVariable(pipeline_id=row.id, name=name, value=stored, is_secret=secret)
            session.add(var)
        else:
            var.value, var.is_secret = stored, secret
        audit.record(
            session, "pipeline.variable.set", actor=principal.username, target=f"{pipeline}/{name}", secret=secret
        )
        session.flush()
        return variable_view(var)


def delete_variable(platform: Platform, principal: Principal, pipeline: str, name: str) -> VariableView:
    principal.require("repo:write")
    with transaction(platform.sessions) as session:
        row = get_row(session, pipeline)
        check_manager(session, principal, row, "change the variables of")
        var = session.scalars(
            select(PipelineVariable).where(PipelineVariable.pipeline_id == row.id, PipelineVariable.name == name)
        ).first()
        if var is None:
            raise NotFound(f"pipeline {pipeline!r} has no variable {name!r}")
        info = variable_view(var)
        session.delete(var)
        return info


def variables_for_run(platform: Platform, session: Session, pipeline_id: int) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) variables set outside YAML, decrypted for a job."""
    plain: dict[str, str] = {}
    hidden: dict[str, str] = {}
    for var in session.scalars(select(PipelineVariable).where(PipelineVariable.pipeline_id == pipeline_id)):
        if var.is_secret:
            hidden[var.name] = secrets.decrypt(platform, var.value)
        else:
            plain[var.name] = var.value
    return plain, hidden


def variable_view(var: PipelineVariable) -> VariableView:
    return VariableView(name=var.name, value=None if var.is_secret else var.value, secret=var.is_secret)


def pipeline_view(row: Pipeline, last: Run | None) -> PipelineView:
    return PipelineView(
        id=row.id,
        name=row.name,
        folder=row.folder,
        repo=row.repo,
        yaml_path=row.yaml_path,
        created_by=row.created_by,
        owner=row.owner.username if row.owner is not None else None,
        created_at=row.created_at.isoformat(),
        last_run=run_brief(last) if last else None,
    )


def run_fields(run: Run) -> dict[str, Any]:
    """The fields of a run's brief, as keyword arguments of `RunBrief` and the views extending it."""
    return {
        "id": run.id,
        "number": run.number,
        "build_number": run.build_number,
        "state": state(run.state),
        "reason": run.reason,
        "source_branch": run.source_branch,
        "source_version": run.source_version,
        "queued_at": run.queued_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "errors": list(run.errors or []),  # file:line:col diagnostics of an invalid pipeline
    }


def run_brief(run: Run) -> RunBrief:
    return RunBrief(**run_fields(run))
