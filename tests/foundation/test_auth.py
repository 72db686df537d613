"""The auth matrix on the API and on git: no token, wrong token, revoked, expired, insufficient scope."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import TLS, Git, Server
from tests.postgres import state_rows

pytestmark = pytest.mark.slow


def make_token(server: Server, *scopes: str, expires_in: str | None = None, name: str = "t") -> str:
    with server.client() as api:
        body = {"name": name, "scopes": list(scopes), "expires_in": expires_in}
        response = api.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_health_needs_no_token(server: Server) -> None:
    with server.client(token="") as api:
        response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["ok"] is True


@pytest.mark.parametrize(
    "path", ["/api/v1/repos", "/api/v1/me", "/api/v1/environments", "/api/v1/tokens", "/api/v1/users"]
)
def test_api_without_token_is_401_with_challenge(server: Server, path: str) -> None:
    with server.client(token="") as api:
        response = api.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["ok"] is False and body["status"] == 401
    assert body["error"].startswith("authentication required")


def test_wrong_token_is_401_and_audited(server: Server) -> None:
    # From an address of its own: the audit keeps the first failure of each address and minute.
    address = "127.0.41.7"
    headers = {"Authorization": "Bearer myd_not-a-real-token"}
    with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=address, verify=TLS)) as api:
        response = api.get("/api/v1/repos", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid token"
    with server.client() as api:
        entries = api.get("/api/v1/audit", params={"action": "login.failed"}).json()
    assert any(e["detail"].get("reason") == "invalid token" and e["remote_addr"] == address for e in entries)


def test_revoked_token_fails_on_the_next_request(server: Server) -> None:
    token = make_token(server, "repo:read", name="to-revoke")
    with server.client(token) as api:
        assert api.get("/api/v1/repos").status_code == 200
        me = api.get("/api/v1/me").json()
    with server.client() as admin:
        assert admin.delete(f"/api/v1/tokens/{me['token_id']}").status_code == 200
    with server.client(token) as api:
        response = api.get("/api/v1/repos")
    assert response.status_code == 401
    assert response.json()["error"] == "token has been revoked"
    with server.client() as admin:
        actions = [e["action"] for e in admin.get("/api/v1/audit").json()]
    assert "token.revoked" in actions and "token.created" in actions


def test_expired_token_is_401(server: Server) -> None:
    token = make_token(server, "repo:read", expires_in="1s", name="short")
    time.sleep(1.2)
    with server.client(token) as api:
        response = api.get("/api/v1/repos")
    assert response.status_code == 401
    assert response.json()["error"] == "token has expired"


def test_insufficient_scope_is_403(server: Server) -> None:
    token = make_token(server, "repo:read", name="reader")
    with server.client(token) as api:
        response = api.post("/api/v1/repos", json={"name": "scope-test"})
        assert response.status_code == 403
        assert "'repo:write' scope" in response.json()["error"]
        escalate = api.post("/api/v1/tokens", json={"name": "x", "scopes": ["admin"]})
        assert escalate.status_code == 403


def test_basic_auth_with_the_wrong_user_is_401(server: Server) -> None:
    with server.client(token="") as api:
        response = api.get("/api/v1/me", auth=("someone-else", server.token))
        assert response.status_code == 401
        assert response.json()["error"] == "token does not belong to user 'someone-else'"
        assert api.get("/api/v1/me", auth=(server.username, server.token)).status_code == 200


def test_tokens_are_stored_only_as_hashes(server: Server) -> None:
    token = make_token(server, "repo:read", name="hashed")
    rows = state_rows(server.home, "select token_hash, prefix from tokens")
    assert all(token not in h for h, _ in rows)
    assert any(token.startswith(p) for _, p in rows)


def test_git_auth_matrix(server: Server, git: Git) -> None:
    with server.client() as api:
        assert api.post("/api/v1/repos", json={"name": "auth-matrix"}).status_code == 201
    url = f"http://127.0.0.1:{server.port}/git/auth-matrix.git"
    anonymous = git("clone", url, "anon", check=False)  # git is challenged and would prompt for credentials
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
    with server.client(token="") as raw:
        probe = raw.get("/git/auth-matrix.git/info/refs?service=git-upload-pack")
    assert probe.status_code == 401 and probe.headers["www-authenticate"].startswith("Basic")
    wrong = git("clone", server.remote("auth-matrix", token="myd_wrong"), "wrong", check=False)
    assert wrong.returncode != 0 and "invalid token" in wrong.stderr

    reader = make_token(server, "repo:read", name="git-reader")
    git("clone", "-q", server.remote("auth-matrix", token=reader), "reader")
    git.commit({"a.txt": "a"}, "first", cwd=git.cwd / "reader")
    push = git("push", "origin", "HEAD:master", check=False, cwd=git.cwd / "reader")
    assert push.returncode != 0 and "'repo:write' scope" in push.stderr

    writer = make_token(server, "repo:write", name="git-writer")
    git("push", "-q", server.remote("auth-matrix", token=writer), "HEAD:master", cwd=git.cwd / "reader")
    with server.client() as admin:
        me = admin.get("/api/v1/tokens").json()
        writer_id = next(t["id"] for t in me if t["name"] == "git-writer")
        admin.delete(f"/api/v1/tokens/{writer_id}")
    revoked = git("fetch", server.remote("auth-matrix", token=writer), check=False, cwd=git.cwd / "reader")
    assert revoked.returncode != 0 and "token has been revoked" in revoked.stderr

    expiring = make_token(server, "repo:read", expires_in="1s", name="git-expiring")
    time.sleep(1.2)
    expired = git("clone", server.remote("auth-matrix", token=expiring), "expired", check=False)
    assert expired.returncode != 0 and "token has expired" in expired.stderr
