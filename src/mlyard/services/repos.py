"""Hosted repositories: create, list, show, update, delete."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlyard.db.engine import transaction
from mlyard.db.tables import Repo
from mlyard.errors import Conflict, NotFound
from mlyard.git import repos as git
from mlyard.names import check_branch_name, check_repo_name
from mlyard.services import audit
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.services.settings import default_branch
from mlyard.views import RepoView


def create_repo(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    default_branch_name: str | None = None,
    allow_force_push: bool = False,
) -> RepoView:
    principal.require("repo:write")
    check_repo_name(name)
    branch = check_branch_name(default_branch_name or default_branch(platform))
    path = git.repo_path(platform.settings.repos_dir, name)
    exists = Conflict(f"repository {name!r} already exists; pick another name or delete it first")
    created = False
    try:
        with transaction(platform.sessions) as session:
            if _find(session, name) is not None or path.exists():
                raise exists
            row = Repo(
                name=name, default_branch=branch, allow_force_push=allow_force_push, created_by=principal.username
            )
            session.add(row)
            audit.record(session, "repo.created", actor=principal.username, target=name)
            # The name is taken here: a concurrent create of the same name waits for this transaction and
            # then fails on the unique name, before it touches the repository's directory.
            session.flush()
            platform.settings.repos_dir.mkdir(parents=True, exist_ok=True)
            git.init_bare(path, default_branch=branch, allow_force_push=allow_force_push)
            created = True
            info = repo_view(platform, row)
        return info
    except BaseException as exc:
        if created:  # the row was not committed: the directory goes with it
            git.delete(path)
        if isinstance(exc, IntegrityError):
            raise exists from None
        raise


def list_repos(platform: Platform) -> list[RepoView]:
    with transaction(platform.sessions) as session:
        return [repo_view(platform, r) for r in session.scalars(select(Repo).order_by(Repo.name))]


def get_repo(platform: Platform, name: str) -> RepoView:
    with transaction(platform.sessions) as session:
        return repo_view(platform, _get(session, name))


def show_repo(platform: Platform, name: str) -> RepoView:
    """The repo with its branches, tags and the last commit of its default branch."""
    info = get_repo(platform, name)
    path = git.repo_path(platform.settings.repos_dir, name)
    commit = git.last_commit(path, f"refs/heads/{info.default_branch}")
    info.branches = git.branches(path)
    info.tags = git.tags(path)
    info.last_commit = (
        None
        if commit is None
        else {"sha": commit.sha, "author": commit.author, "date": commit.date, "subject": commit.subject}
    )
    return info


def update_repo(
    platform: Platform,
    principal: Principal,
    name: str,
    *,
    allow_force_push: bool | None = None,
    default_branch_name: str | None = None,
) -> RepoView:
    principal.require("admin")
    with transaction(platform.sessions) as session:
        row = _get(session, name)
        path = git.repo_path(platform.settings.repos_dir, name)
        if allow_force_push is not None:
            row.allow_force_push = allow_force_push
        if default_branch_name is not None:
            row.default_branch = check_branch_name(default_branch_name)
            git.run_git(["symbolic-ref", "HEAD", f"refs/heads/{row.default_branch}"], cwd=path)
        git.configure(path, allow_force_push=row.allow_force_push)
        audit.record(
            session,
            "repo.updated",
            actor=principal.username,
            target=name,
            allow_force_push=row.allow_force_push,
            default_branch=row.default_branch,
        )
        return repo_view(platform, row)


def delete_repo(platform: Platform, principal: Principal, name: str) -> RepoView:
    """Delete a repository: administrators, or the user who created it (with `repo:write`)."""
    principal.require("repo:write")
    with transaction(platform.sessions) as session:
        row = _get(session, name)
        if row.created_by != principal.username:
            principal.require("admin")
        info = repo_view(platform, row)
        session.delete(row)
        audit.record(session, "repo.deleted", actor=principal.username, target=name)
        session.flush()
        git.delete(git.repo_path(platform.settings.repos_dir, name))
    return info


def repo_view(platform: Platform, row: Repo) -> RepoView:
    return RepoView(
        name=row.name,
        default_branch=row.default_branch,
        allow_force_push=row.allow_force_push,
        created_by=row.created_by,
        created_at=row.created_at.isoformat(),
        clone_url=f"{platform.settings.url}/git/{row.name}.git",
    )


def _find(session: Session, name: str) -> Repo | None:
    return session.scalars(select(Repo).where(Repo.name == name)).first()


def _get(session: Session, name: str) -> Repo:
    check_repo_name(name)
    row = _find(session, name)
    if row is None:
        raise NotFound(f"repository {name!r} not found; list repositories with `mlyard repos list`")
    return row
