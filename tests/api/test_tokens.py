"""Token rules: names unique per user among tokens not revoked, revocation needs the `tokens` scope (or
admin) except for the token in use, and a token cannot outlive the token that created it."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest

from mlyard.services import auth, infrastructure, pipelines
from mlyard.services.platform import open_platform
from mlyard.settings import Settings
from tests.conftest import Server, free_port, mlyard

pytestmark = pytest.mark.slow


def create(server: Server, name: str, *scopes: str, token: str | None = None, expires_in: str | None = None) -> dict:
    with server.client(token) as api:
        response = api.post("/api/v1/tokens", json={"name": name, "scopes": list(scopes), "expires_in": expires_in})
    assert response.status_code == 201, response.text
    return dict(response.json())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_token_names_are_unique_until_revoked(server: Server) -> None:
    name = unique("laptop")
    first = create(server, name, "repo:read")
    with server.client() as api:
        again = api.post("/api/v1/tokens", json={"name": name, "scopes": ["repo:read"]})
        assert again.status_code == 409
        assert again.json()["error"] == (
            f"user 'admin' already has a token named {name!r}: choose another name, or revoke that one first "
            f"(`mlyard tokens revoke {name}`)"
        )
        assert api.delete(f"/api/v1/tokens/{name}").json()["id"] == first["id"]
    second = create(server, name, "repo:read")  # the name is free again
    with server.client() as api:
        revoked = api.delete(f"/api/v1/tokens/{name}")  # the name means the active one
    assert revoked.json()["id"] == second["id"] and revoked.json()["state"] == "revoked"


def test_revoking_other_tokens_needs_the_tokens_scope(server: Server) -> None:
    low = create(server, unique("low"), "repo:read")
    sibling = create(server, unique("sibling"), "repo:read")
    with server.client(low["token"]) as api:
        refused = api.delete(f"/api/v1/tokens/{sibling['id']}")
        assert refused.status_code == 403
        assert refused.json()["error"] == (
            "revoking a token needs the 'tokens' scope (or 'admin'), which the token you use lacks; use one that "
            "has it, or create one with `mlyard tokens create --name NAME --scope tokens`"
        )
    manager = create(server, unique("manager"), "tokens", "repo:read")
    with server.client(manager["token"]) as api:
        assert api.delete(f"/api/v1/tokens/{sibling['id']}").json()["state"] == "revoked"
    with server.client(low["token"]) as api:  # a token may always revoke itself (signing out)
        assert api.delete(f"/api/v1/tokens/{low['id']}").json()["state"] == "revoked"
        assert api.get("/api/v1/me").status_code == 401


def test_a_token_cannot_outlive_the_token_that_creates_it(server: Server) -> None:
    parent = create(server, unique("parent"), "repo:read", "tokens", expires_in="2h")
    parent_expiry = datetime.fromisoformat(parent["expires_at"])
    inherited = create(server, unique("child"), "repo:read", token=parent["token"])
    assert inherited["expires_at"] == parent["expires_at"]  # no lifetime asked: it expires with its parent
    shorter = create(server, unique("child"), "repo:read", token=parent["token"], expires_in="1h")
    assert datetime.fromisoformat(shorter["expires_at"]) < parent_expiry
    with server.client(parent["token"]) as api:
        longer = api.post("/api/v1/tokens", json={"name": unique("child"), "scopes": ["repo:read"], "expires_in": "3h"})
    assert longer.status_code == 400
    error = longer.json()["error"]
    expected = f"a token cannot outlive the token that creates it, which expires at {parent['expires_at']}"
    assert error.startswith(expected)
    assert error.endswith("ask for a shorter --expires-in, or omit it to expire with it")
    never = create(server, unique("unbounded"), "repo:read")  # a token without expiry bounds nothing
    assert never["expires_at"] is None


def test_infra_sync_replaces_the_creator_token_it_gives_again(tmp_path: Path) -> None:
    """The platform's own tokens are replaced, not duplicated: `infra sync` gives the creator pipeline a
    new token when its variables are gone, and revokes the one that had the same name."""
    home = tmp_path / "home"
    mlyard("init", "--port", str(free_port()), "--json", home=home)
    platform = open_platform(Settings.load(home))
    try:
        admin = infrastructure.admin_principal(platform)
        pipelines.delete_variable(platform, admin, infrastructure.CREATOR_PIPELINE, "GIT_ACCESS_TOKEN")
        assert infrastructure.sync(platform, admin)["variables"] == ["GIT_USERNAME", "GIT_ACCESS_TOKEN"]
        mine = [t for t in auth.list_tokens(platform, admin, all_users=True) if t.name == "ml-project-creator"]
    finally:
        platform.close()
    assert [t.state for t in mine] == ["revoked", "active"]
