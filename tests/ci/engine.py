"""In-process run engine on a real database and real bare repos: pushes go through the real post-receive
hook into the spool and `events.ingest`, with no HTTP server (fast rule tests)."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlyard.db.engine import transaction, upgrade
from mlyard.db.tables import User
from mlyard.services import events, pipelines, repos, triggers
from mlyard.services.auth import SCOPES, Principal
from mlyard.services.platform import Platform, open_platform
from mlyard.settings import Settings
from tests.conftest import Git

ADMIN = Principal(user_id=1, username="admin", is_admin=True, token_id=0, scopes=frozenset(SCOPES))


def open_engine(home: Path, database_url: str = "") -> Platform:
    settings = Settings(home=home, database_url=database_url)
    for sub in ("repos", "spool", "runs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    platform = open_platform(settings)
    with transaction(platform.sessions) as session:  # ADMIN is a real user: what it creates names its owner
        session.add(User(id=ADMIN.user_id, username=ADMIN.username, is_admin=True))
    return platform


@dataclass
class Engine:
    platform: Platform
    git: Git

    def repo(self, name: str, files: dict[str, str]) -> Path:
        """A hosted repo `name` with `files` pushed to master; returns its work tree."""
        repos.create_repo(self.platform, ADMIN, name, default_branch_name="master")
        work = self.git.cwd / name
        self.git("clone", "-q", str(repos.git.repo_path(self.platform.settings.repos_dir, name)), str(work))
        self.git.commit(files, "initial", cwd=work)
        self.push(name, work, "master")
        triggers.trigger_pending(self.platform)  # no pipeline yet: the first push only gets marked
        return work

    def pipeline(self, name: str, repo: str, yaml_path: str) -> None:
        pipelines.create_pipeline(self.platform, ADMIN, name=name, repo=repo, yaml_path=yaml_path)

    def push(self, repo: str, work: Path, *refspecs: str) -> list[dict[str, object]]:
        """`git push` straight to the bare repo through its post-receive hook, then ingest the spool record."""
        push_id = uuid.uuid4().hex
        env = {
            "MLYARD_SPOOL": str(self.platform.settings.spool_dir),
            "MLYARD_PUSH_ID": push_id,
            "MLYARD_PUSHER": "admin",
            "MLYARD_REPO": repo,
        }
        subprocess.run(
            ["git", "push", "-q", "origin", *refspecs],
            cwd=work,
            env={**self.git.env, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )
        return events.ingest(self.platform, push_id)
