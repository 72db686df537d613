"""In-process run engine on a real database and real bare repos: pushes go through the real post-receive
hook into the spool and `events.ingest`, with no HTTP server (fast rule tests).

The engine's orchestrator runs no thread: `settle` ticks it until nothing changes, and jobs are claimed
and completed through the same service functions the agent API calls (`jobs.claim`, `jobs.complete`),
with the outcome a test chooses instead of an agent running steps.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from mlyard.ci import triggers
from mlyard.ci.orchestrator import Orchestrator
from mlyard.db.engine import transaction, upgrade
from mlyard.db.tables import Run, RunJob, RunStage, User
from mlyard.protocol import JobOutcome
from mlyard.services import events, jobs, pipelines, repos, runs
from mlyard.services.auth import SCOPES, Principal
from mlyard.services.platform import Platform, open_platform
from mlyard.settings import Settings
from tests.conftest import Git, migrated

ADMIN = Principal(user_id=1, username="admin", is_admin=True, token_id=0, scopes=frozenset(SCOPES))


def open_engine(home: Path, database_url: str = "") -> Platform:
    settings = Settings(home=home, database_url=database_url)
    for sub in ("repos", "spool", "runs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    settings.secret_key_file.write_bytes(Fernet.generate_key())  # secret variables are stored encrypted
    migrated(settings.db_url)  # a copy of a database migrated once (tests/conftest.py): `upgrade` finds it at head
    upgrade(settings.db_url)
    platform = open_platform(settings)
    with transaction(platform.sessions) as session:  # ADMIN is a real user: what it creates names its owner
        session.add(User(id=ADMIN.user_id, username=ADMIN.username, is_admin=True))
    return platform


AGENT = "table-agent"


@dataclass
class Engine:
    platform: Platform
    git: Git
    orchestrator: Orchestrator = field(init=False)

    def __post_init__(self) -> None:
        self.orchestrator = Orchestrator(self.platform)  # no thread: `settle` ticks it
        self.platform.orchestrator = self.orchestrator

    def close(self) -> None:
        self.orchestrator.stop()
        self.platform.close()

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

    # -- driving runs without agents -----------------------------------------------------------
    def run(self, pipeline: str, **variables: str) -> int:
        """Queue a manual run of `pipeline` and settle it; returns its id."""
        run_id = runs.queue_manual(self.platform, ADMIN, pipeline, variables=variables).id
        self.settle()
        return run_id

    def settle(self) -> None:
        """Tick the orchestrator (compilations included) until no run, stage or job changes."""
        last = None
        for _ in range(100):
            self.orchestrator.tick()
            deadline = time.monotonic() + 60
            while self.orchestrator.compiling():
                assert time.monotonic() < deadline, "compilation did not finish"
                time.sleep(0.005)
            now = self.snapshot()
            if now == last:
                return
            last = now
        raise AssertionError(f"the runs never settled: {last}")

    def snapshot(self) -> tuple[tuple[str, ...], ...]:
        with transaction(self.platform.sessions) as session:
            return (
                tuple(f"{r.id}:{r.state}" for r in session.scalars(select(Run).order_by(Run.id))),
                tuple(f"{s.id}:{s.state}" for s in session.scalars(select(RunStage).order_by(RunStage.id))),
                tuple(f"{j.id}:{j.state}:{j.approval}" for j in session.scalars(select(RunJob).order_by(RunJob.id))),
            )

    def claim(self) -> dict[str, object] | None:
        """What an agent gets from `POST /agent/claim` (a JobSpec document), or None."""
        return jobs.claim(self.platform, self.orchestrator, AGENT)

    def complete(self, job_id: int, result: str, outputs: dict[str, str] | None = None) -> None:
        jobs.complete(self.platform, self.orchestrator, job_id, JobOutcome(result=result, outputs=outputs or {}))

    def drive(
        self, results: dict[str, str], outputs: dict[str, dict[str, str]] | None = None
    ) -> list[dict[str, object]]:
        """Claim every claimable job and complete it with `results[name]` (default succeeded) and
        `outputs[name]`, settling in between, until no job is claimable; returns the claimed specs in order."""
        claimed: list[dict[str, object]] = []
        while (spec := self.claim()) is not None:
            name = str(spec["name"])
            claimed.append(spec)
            self.complete(int(str(spec["job_id"])), results.get(name, "succeeded"), (outputs or {}).get(name))
            self.settle()
        return claimed

    def run_state(self, run_id: int) -> str:
        return runs.run_state(self.platform, run_id)

    def job_states(self, run_id: int) -> dict[str, str]:
        with transaction(self.platform.sessions) as session:
            return {j.name: j.state for j in session.scalars(select(RunJob).where(RunJob.run_id == run_id))}

    def stage_states(self, run_id: int) -> dict[str, str]:
        with transaction(self.platform.sessions) as session:
            return {s.name: s.state for s in session.scalars(select(RunStage).where(RunStage.run_id == run_id))}
