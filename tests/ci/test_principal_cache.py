"""Tokens authenticated a moment ago answer without the database, and every write of a token or user voids
them at once (mlyard.services.principals)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from mlyard.db.engine import transaction
from mlyard.db.tables import Token, User
from mlyard.errors import AuthenticationError
from mlyard.services import auth, jobs
from mlyard.services.platform import Platform, open_platform
from tests.ci.engine import ADMIN, Engine


@contextmanager
def statements(platform: Platform) -> Iterator[list[str]]:
    """The SQL statements the platform's engine runs meanwhile."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(platform.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(platform.engine, "before_cursor_execute", record)


def new_token(platform: Platform, name: str = "t", username: str = "admin") -> str:
    return auth.create_token(platform, username=username, name=name, scopes=["repo:read"]).token or ""


def test_a_token_used_again_reads_nothing(engine: Engine) -> None:
    token = new_token(engine.platform)
    first = auth.authenticate(engine.platform, token)
    with statements(engine.platform) as seen:
        again = auth.authenticate(engine.platform, token)
        basic = auth.authenticate(engine.platform, token, username="admin")
    assert again == basic == first and seen == []
    with pytest.raises(AuthenticationError, match="does not belong to user 'bob'"):
        auth.authenticate(engine.platform, token, username="bob")


def test_a_revoked_token_is_refused_at_the_next_request(engine: Engine) -> None:
    token = new_token(engine.platform, "to-revoke")
    principal = auth.authenticate(engine.platform, token)
    auth.revoke_token(engine.platform, ADMIN, str(principal.token_id))
    with pytest.raises(AuthenticationError, match="token has been revoked"):
        auth.authenticate(engine.platform, token)


def test_a_changed_or_deleted_user_takes_effect_at_the_next_request(engine: Engine) -> None:
    auth.create_user(engine.platform, "bob")
    token = new_token(engine.platform, username="bob")
    assert not auth.authenticate(engine.platform, token).is_admin
    with transaction(engine.platform.sessions) as session:
        session.scalars(select(User).where(User.username == "bob")).one().is_admin = True
    assert auth.authenticate(engine.platform, token).is_admin
    with transaction(engine.platform.sessions) as session:
        bob = session.scalars(select(User).where(User.username == "bob")).one()
        for row in bob.tokens:
            session.delete(row)
        session.delete(bob)
    with pytest.raises(AuthenticationError, match="invalid token"):
        auth.authenticate(engine.platform, token)


def test_another_process_revoking_is_seen_within_the_caches_age(engine: Engine) -> None:
    """This process's writes void the entries at once; a write by another process (the state database is the
    server's alone, but) is seen at the latest once an entry is older than its maximum age."""
    engine.platform.principals.max_age = 0.5
    token = new_token(engine.platform)
    auth.authenticate(engine.platform, token)
    other = open_platform(engine.platform.settings)
    try:
        with transaction(other.sessions) as session:
            session.scalars(select(Token).where(Token.name == "t")).one().revoked_at = datetime.now(UTC)
    finally:
        other.close()
    time.sleep(0.6)
    with pytest.raises(AuthenticationError, match="token has been revoked"):
        auth.authenticate(engine.platform, token)


def test_the_last_use_is_still_recorded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "LAST_USED_RESOLUTION", timedelta(seconds=0.3))
    token = new_token(engine.platform)
    auth.authenticate(engine.platform, token)
    with transaction(engine.platform.sessions) as session:
        first = session.scalars(select(Token.last_used_at).where(Token.name == "t")).one()
    time.sleep(0.4)
    auth.authenticate(engine.platform, token)
    with transaction(engine.platform.sessions) as session:
        second = session.scalars(select(Token.last_used_at).where(Token.name == "t")).one()
    assert first is not None and second is not None and second - first >= timedelta(seconds=0.3)


def test_an_expired_entry_is_not_used(engine: Engine) -> None:
    token = auth.create_token(engine.platform, username="admin", name="short", scopes=["repo:read"],
                              expires_in=timedelta(seconds=1)).token or ""  # fmt: skip
    auth.authenticate(engine.platform, token)
    time.sleep(1.1)
    with pytest.raises(AuthenticationError, match="token has expired"):
        auth.authenticate(engine.platform, token)


def _claimed(engine: Engine) -> tuple[int, str]:
    """A running job and its token."""
    engine.repo("held", {"ci.yml": "jobs:\n- job: Holds\n  steps:\n  - script: 'true'\n"})
    engine.pipeline("held-ci", "held", "ci.yml")
    engine.run("held-ci")
    spec = engine.claim()
    assert spec is not None
    return int(str(spec["job_id"])), f"Bearer {spec['access_token']}"


def test_a_running_jobs_token_used_again_reads_nothing_and_its_end_voids_it(engine: Engine) -> None:
    job_id, header = _claimed(engine)
    first = jobs.authenticate_job(engine.platform, header, job_id)
    with statements(engine.platform) as seen:
        again = jobs.authenticate_job(engine.platform, header, job_id)
    assert again == first and seen == []
    with pytest.raises(AuthenticationError, match="invalid or expired job token"):
        jobs.authenticate_job(engine.platform, header, job_id + 1)  # another job's id with this token
    token = header.split(" ", 1)[1]
    assert jobs.job_repo_access(engine.platform, token) == {"held"}  # what its checkout may read
    with statements(engine.platform) as seen:
        assert jobs.job_repo_access(engine.platform, token) == {"held"}
    assert seen == []
    engine.complete(job_id, "succeeded")
    with pytest.raises(AuthenticationError, match="invalid or expired job token"):
        jobs.authenticate_job(engine.platform, header, job_id)
    assert jobs.job_repo_access(engine.platform, token) == frozenset()


def test_a_job_whose_lease_expired_is_refused_at_the_next_report(engine: Engine) -> None:
    job_id, header = _claimed(engine)
    jobs.authenticate_job(engine.platform, header, job_id)
    queue = engine.orchestrator.queue
    assert queue.expire_leases(now=datetime.now(UTC) + timedelta(seconds=queue.lease_seconds + 1)) == [job_id]
    with pytest.raises(AuthenticationError, match="invalid or expired job token"):
        jobs.authenticate_job(engine.platform, header, job_id)
