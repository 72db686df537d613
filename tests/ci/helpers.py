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
    """Wait until the run is in one of `states` (default: any final state). For final states the server's run wait
    (`GET /runs/{id}?wait=S`, answered when the run ends) replaces polling: ten requests a second to the server,
    each a run document read, were CPU the whole suite paid for."""
    wanted = states or FINAL
    deadline = time.monotonic() + timeout
    doc = show(server, run_id)
    with server.client() as api:
        while doc["state"] not in wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                text = logs(server, run_id)
                raise AssertionError(f"run {run_id} still {doc['state']} after {timeout}s: {doc}\n{text}")
            if wanted <= FINAL and doc["state"] not in FINAL:
                response = api.get(f"/api/v1/runs/{run_id}", params={"wait": round(min(remaining, 30.0), 1)})
            else:  # a state before the end, or a final state that is not the one wanted
                time.sleep(0.1)
                response = api.get(f"/api/v1/runs/{run_id}")
            assert response.status_code == 200, response.text
            doc = dict(response.json())
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
