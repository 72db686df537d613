"""Helpers for end-to-end pipeline tests: a repo with files pushed by real git, runs awaited over the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import Git, Server

FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}


def make_repo(server: Server, git: Git, name: str, files: dict[str, str], message: str = "initial") -> Path:
    """Create `name` on the server and push `files` to master; returns the work tree."""
    with server.client() as api:
        response = api.post("/api/v1/repos", json={"name": name})
        assert response.status_code == 201, response.text
    work = git.cwd / name
    git("clone", "-q", server.remote(name), str(work))
    git.commit(files, message, cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    return work


def register(server: Server, name: str, repo: str, yaml: str, folder: str = "") -> dict[str, Any]:
    with server.client() as api:
        response = api.post("/api/v1/pipelines", json={"name": name, "repo": repo, "yaml": yaml, "folder": folder})
    assert response.status_code == 201, response.text
    return dict(response.json())


def run(server: Server, pipeline: str, **body: Any) -> dict[str, Any]:
    with server.client() as api:
        response = api.post(f"/api/v1/pipelines/{pipeline}/runs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def show(server: Server, run_id: int) -> dict[str, Any]:
    with server.client() as api:
        response = api.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_state(server: Server, run_id: int, states: set[str] | None = None, timeout: float = 60) -> dict[str, Any]:
    """Poll the run until it is in one of `states` (default: any final state)."""
    wanted = states or FINAL
    deadline = time.monotonic() + timeout
    doc = show(server, run_id)
    while doc["state"] not in wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {doc['state']} after {timeout}s: {doc}\n{logs(server, run_id)}")
        time.sleep(0.1)
        doc = show(server, run_id)
    return doc


def logs(server: Server, run_id: int, step: str | None = None) -> str:
    with server.client() as api:
        response = api.get(f"/api/v1/runs/{run_id}/logs", params={"step": step} if step else None)
    assert response.status_code == 200, response.text
    return response.text


def runs_of(server: Server, pipeline: str) -> list[dict[str, Any]]:
    with server.client() as api:
        response = api.get("/api/v1/runs", params={"pipeline": pipeline})
    assert response.status_code == 200, response.text
    return list(response.json())


def job(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for s in doc["stages"] for j in s["jobs"] if j["name"] == name)


def wait_runs(server: Server, pipeline: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = runs_of(server, pipeline)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
