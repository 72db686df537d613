"""checkout over git smart HTTP from a real `mlyard server`, authenticated only by the token's
`http.extraHeader` in git's environment (never in argv or the URL)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from mlyard.protocol import FAILED, SUCCEEDED, Repository
from mlyard.sandbox import Sandbox
from tests.agent.conftest import Runner, job, script
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow


def _push(server: Server, git: Git, name: str) -> list[str]:
    with server.client() as api:
        assert api.post("/api/v1/repos", json={"name": name}).status_code == 201
    git("clone", "-q", server.remote(name), "w")
    work = git.cwd / "w"
    first = git.commit({"app.txt": "one\n"}, "first", cwd=work)
    second = git.commit({"app.txt": "two\n"}, "second", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    return [first, second]


def _spy_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on the agent's PATH that records its argv and GIT_CONFIG_* variables, then runs git."""
    real = next(
        Path(folder) / "git" for folder in os.environ["PATH"].split(os.pathsep) if (Path(folder) / "git").is_file()
    )
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    record = tmp_path / "git-calls.txt"
    spy = spy_dir / "git"
    spy.write_text(f'#!/bin/sh\necho "argv: $*" >> {record}\nenv | grep ^GIT_CONFIG_ >> {record}\nexec {real} "$@"\n')
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{spy_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_checkout_from_the_server_with_the_token_header(
    server: Server, git: Git, run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = _push(server, git, "agent-checkout")
    record = _spy_git(tmp_path, monkeypatch)
    repo = Repository(name="agent-checkout", url=f"{server.url}/git/agent-checkout.git", commit=first,
                      ref="refs/heads/master")  # fmt: skip
    spec = dataclasses.replace(job(script("show", "cat app.txt\ngit rev-parse HEAD"), repository=repo),
                               access_token=server.token)  # fmt: skip
    _, rec = run(spec, sandbox=Sandbox.none())  # the spy git and its record live outside the work directory
    assert rec.result("__checkout") == SUCCEEDED, rec.text("__checkout")
    assert rec.logs["show"][-3:-1] == ["one", first]
    calls = record.read_text()
    argv_lines = [line for line in calls.splitlines() if line.startswith("argv: ")]
    assert argv_lines and all(server.token not in line for line in argv_lines)
    synced = [line for line in argv_lines if " fetch " in line or " checkout " in line]
    assert synced and all("-c core.fsync=none" in line for line in synced)  # a throwaway directory: no fsync
    assert f"=Authorization: Bearer {server.token}" in calls  # only in the environment
    assert server.token not in rec.all_text()


def test_checkout_with_a_wrong_token_fails_without_hanging(server: Server, git: Git, run: Runner) -> None:
    first, _ = _push(server, git, "agent-checkout-denied")
    repo = Repository(
        name="x", url=f"{server.url}/git/agent-checkout-denied.git", commit=first, ref="refs/heads/master"
    )
    outcome, rec = run(job(script("show", "true"), repository=repo))  # the job token is not a valid PAT
    assert rec.result("__checkout") == FAILED
    assert outcome.result == FAILED
