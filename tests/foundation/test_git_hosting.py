"""Git smart HTTP with the real git client, repos API, name rules and push events."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Git, Server

pytestmark = pytest.mark.slow
ZERO = "0" * 40


def create(server: Server, name: str, **body: object) -> dict:
    with server.client() as api:
        response = api.post("/api/v1/repos", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def events(server: Server, repo: str, after: int = 0) -> list[dict]:
    with server.client() as api:
        response = api.get(f"/api/v1/repos/{repo}/events", params={"after": after})
    assert response.status_code == 200, response.text
    return response.json()


RULE = (
    "names use lower-case letters, digits, '.', '_' and '-', start with a letter or digit, have at most 63 "
    "characters, do not end in '.git' and do not contain '..'"
)


@pytest.mark.parametrize("name", ["Upper", "-dash", "a" * 64, "x.git", "a..b", "sp ace", "sl/ash", "_x", "ü"])
def test_invalid_repo_names_get_400_stating_the_rule(server: Server, name: str) -> None:
    with server.client() as api:
        response = api.post("/api/v1/repos", json={"name": name})
    assert response.status_code == 400
    assert response.json()["error"] == f"invalid repository name {name!r}: {RULE}"
    assert not (server.home / "repos" / f"{name}.git").exists()


@pytest.mark.parametrize("name", ["a", "my-model", "v1.2_x", "0abc", "a" * 63])
def test_valid_repo_names(server: Server, name: str) -> None:
    assert create(server, name)["name"] == name


def test_existing_name_is_409(server: Server) -> None:
    create(server, "twice")
    with server.client() as api:
        response = api.post("/api/v1/repos", json={"name": "twice"})
    assert response.status_code == 409
    assert response.json()["error"] == "repository 'twice' already exists; pick another name or delete it first"


def test_clone_push_fetch_and_show(server: Server, git: Git) -> None:
    create(server, "roundtrip")
    git("clone", "-q", server.remote("roundtrip"), "a")
    first = git.commit({"src/app.py": "print('hi')\n", "README.md": "# hi\n"}, "first", cwd=git.cwd / "a")
    git("push", "-q", "origin", "master", cwd=git.cwd / "a")
    git("clone", "-q", server.remote("roundtrip"), "b")
    assert (git.cwd / "b" / "src" / "app.py").read_text() == "print('hi')\n"
    second = git.commit({"src/app.py": "print('bye')\n"}, "second", cwd=git.cwd / "b")
    git("push", "-q", "origin", "master", cwd=git.cwd / "b")
    git("fetch", "-q", "origin", cwd=git.cwd / "a")
    assert git("rev-parse", "origin/master", cwd=git.cwd / "a").stdout.strip() == second
    with server.client() as api:
        shown = api.get("/api/v1/repos/roundtrip").json()
    assert shown["default_branch"] == "master"
    assert shown["last_commit"]["sha"] == second and shown["last_commit"]["subject"] == "second"
    assert [b["name"] for b in shown["branches"]] == ["master"]
    assert first != second


def test_force_push_rejected_unless_allowed(server: Server, git: Git) -> None:
    create(server, "forced")
    git("clone", "-q", server.remote("forced"), "w")
    w = git.cwd / "w"
    git.commit({"a": "1"}, "one", cwd=w)
    git.commit({"a": "2"}, "two", cwd=w)
    git("push", "-q", "origin", "master", cwd=w)
    git("reset", "-q", "--hard", "HEAD~1", cwd=w)
    git.commit({"a": "3"}, "rewritten", cwd=w)
    rejected = git("push", "-f", "origin", "master", check=False, cwd=w)
    assert rejected.returncode != 0 and "non-fast-forward" in rejected.stderr
    with server.client() as api:
        assert api.patch("/api/v1/repos/forced", json={"allow_force_push": True}).status_code == 200
    git("push", "-q", "-f", "origin", "master", cwd=w)


def test_push_events_for_new_branch_fast_forward_tag_and_delete(server: Server, git: Git) -> None:
    create(server, "evented")
    git("clone", "-q", server.remote("evented"), "w")
    w = git.cwd / "w"
    base = git.commit({"src/a.py": "a", "README.md": "r"}, "initial", cwd=w)
    git("push", "-q", "origin", "master", cwd=w)
    git("checkout", "-q", "-b", "feature/x", cwd=w)
    f1 = git.commit({"src/b.py": "b"}, "add b", cwd=w)
    f2 = git.commit({"docs/c.md": "c"}, "add c\n\nwith a body [skip ci]", cwd=w)
    git("push", "-q", "origin", "feature/x", cwd=w)
    git("checkout", "-q", "master", cwd=w)
    ff = git.commit({"src/a.py": "a2"}, "change a", cwd=w)
    git("push", "-q", "origin", "master", cwd=w)
    git("tag", "-a", "v1.0", "-m", "release", cwd=w)
    git("push", "-q", "origin", "v1.0", cwd=w)
    git("push", "-q", "origin", ":feature/x", cwd=w)

    got = events(server, "evented")
    assert [(e["kind"], e["ref"]) for e in got] == [
        ("create", "refs/heads/master"),
        ("create", "refs/heads/feature/x"),
        ("update", "refs/heads/master"),
        ("create", "refs/tags/v1.0"),
        ("delete", "refs/heads/feature/x"),
    ]
    initial, branch, update, tag, delete = got
    assert initial["old_sha"] == ZERO and initial["new_sha"] == base
    assert initial["changed_paths"] == ["README.md", "src/a.py"]
    assert branch["new_sha"] == f2 and branch["changed_paths"] == ["docs/c.md", "src/b.py"]
    assert [c["sha"] for c in branch["commits"]] == [f2, f1]
    assert branch["commits"][0]["message"] == "add c\n\nwith a body [skip ci]"
    assert update["old_sha"] == base and update["new_sha"] == ff and update["changed_paths"] == ["src/a.py"]
    assert tag["changed_paths"] == [] and tag["commits"] == []
    assert delete["new_sha"] == ZERO and delete["changed_paths"] == []
    assert all(e["pusher"] == "admin" for e in got)
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    assert events(server, "evented", after=update["id"]) == [tag, delete]


def test_one_push_of_several_refs_is_recorded_in_order(server: Server, git: Git) -> None:
    create(server, "multi")
    git("clone", "-q", server.remote("multi"), "w")
    w = git.cwd / "w"
    git.commit({"x": "1"}, "x", cwd=w)
    git("branch", "b1", cwd=w)
    git("branch", "b2", cwd=w)
    git("push", "-q", "origin", "master", "b1", "b2", cwd=w)
    got = events(server, "multi")
    assert sorted(e["ref"] for e in got) == ["refs/heads/b1", "refs/heads/b2", "refs/heads/master"]
    assert len({e["push_id"] for e in got}) == 1
    assert [e["seq"] for e in got] == [0, 1, 2]


def test_events_survive_sigkill_right_after_push(own_server: Server, git: Git) -> None:
    create(own_server, "crashy")
    git("clone", "-q", own_server.remote("crashy"), "w")
    w = git.cwd / "w"
    sha = git.commit({"src/a.py": "a"}, "before the crash", cwd=w)
    git("push", "-q", "origin", "master", cwd=w)
    own_server.kill()
    own_server.start()
    got = events(own_server, "crashy")
    assert len(got) == 1 and got[0]["new_sha"] == sha and got[0]["changed_paths"] == ["src/a.py"]
    own_server.stop()
    own_server.start()
    assert events(own_server, "crashy") == got


def test_repo_delete_needs_admin_or_the_creator(server: Server, git: Git) -> None:
    create(server, "doomed")
    with server.client() as api:
        api.post("/api/v1/users", json={"username": "bob"}).raise_for_status()
        bob = api.post("/api/v1/tokens", json={"name": "bob-w", "scopes": ["repo:write"], "user": "bob"}).json()
    with server.client(bob["token"]) as api:
        denied = api.delete("/api/v1/repos/doomed")
        assert denied.status_code == 403 and "'admin' scope" in denied.json()["error"]
        assert api.post("/api/v1/repos", json={"name": "bobs"}).status_code == 201
        assert api.delete("/api/v1/repos/bobs").status_code == 200  # the creator may delete their own
    with server.client() as api:
        assert api.delete("/api/v1/repos/doomed").status_code == 200
        assert api.get("/api/v1/repos/doomed").status_code == 404
    assert not Path(server.home / "repos" / "doomed.git").exists()
    gone = git("clone", server.remote("doomed"), "d", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr
