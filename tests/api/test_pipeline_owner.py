"""Pipelines have an owner (their creator): only the owner, the repository's owner or an administrator may
delete a pipeline or change its variables; any other `repo:write` user gets 403 saying whom to ask."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow


def user_token(server: Server, username: str) -> str:
    with server.client() as api:
        assert api.post("/api/v1/users", json={"username": username}).status_code == 201
        made = api.post(
            "/api/v1/tokens", json={"name": "work", "scopes": ["repo:write", "pipelines:run"], "user": username}
        )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def test_only_owners_and_admins_delete_a_pipeline_or_change_its_variables(server: Server) -> None:
    suffix = uuid.uuid4().hex[:6]
    alice, bob, carol = (f"{who}-{suffix}" for who in ("alice", "bob", "carol"))
    tokens = {who: user_token(server, who) for who in (alice, bob, carol)}
    repo, pipeline = f"owned-{suffix}", f"owned-{suffix}-ci"
    with server.client(tokens[alice]) as api:
        assert api.post("/api/v1/repos", json={"name": repo}).status_code == 201
    with server.client(tokens[bob]) as api:  # bob registers a pipeline in alice's repository
        created = api.post("/api/v1/pipelines", json={"name": pipeline, "repo": repo, "yaml": "ci.yml"})
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == bob
        assert api.put(f"/api/v1/pipelines/{pipeline}/variables/KEY", json={"value": "bob's"}).status_code == 200

    expected = (
        f"only its owner ({bob}), the owner of repository {repo!r} ({alice}) or an administrator may "
        "{action} pipeline " + repr(pipeline) + ": ask one of them"
    )
    with server.client(tokens[carol]) as api:
        overwrite = api.put(f"/api/v1/pipelines/{pipeline}/variables/KEY", json={"value": "stolen", "secret": True})
        unset = api.delete(f"/api/v1/pipelines/{pipeline}/variables/KEY")
        delete = api.delete(f"/api/v1/pipelines/{pipeline}")
    for refused, action in ((overwrite, "change the variables of"), (unset, "change the variables of"),
                            (delete, "delete")):  # fmt: skip
        assert refused.status_code == 403
        assert refused.json()["error"] == expected.format(action=action)

    with server.client() as admin:
        variables = admin.get(f"/api/v1/pipelines/{pipeline}").json()["variables"]
        assert variables == [{"name": "KEY", "value": "bob's", "secret": False}]
        assert admin.put(f"/api/v1/pipelines/{pipeline}/variables/ADMIN", json={"value": "1"}).status_code == 200
    with server.client(tokens[alice]) as api:  # the repository's owner
        assert api.delete(f"/api/v1/pipelines/{pipeline}/variables/ADMIN").status_code == 200
        assert api.delete(f"/api/v1/pipelines/{pipeline}").status_code == 200
