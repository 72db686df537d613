"""checkout: the exact commit of the run from a real bare repository (file://), shallow by default,
implicit for regular jobs, not for deployment jobs, `checkout: none`, persistCredentials.

Sources: "steps.checkout definition" (fetchDepth, persistCredentials, path), "Check out multiple
repositories in your pipeline" / "Pipeline options for Git repositories" (implicit checkout of self;
deployment jobs do not check out automatically: "Deployment jobs").
"""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest

from mlyard.protocol import FAILED, SUCCEEDED, Repository
from tests.agent.conftest import Runner, job, script, step
from tests.conftest import Git


@pytest.fixture
def origin(git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A bare repository with two commits on master; the agent's git runs with the same isolated config."""
    for key, value in git.env.items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    git("init", "-q", "-b", "master")
    first = git.commit({"app.txt": "version 1\n"}, "first")
    second = git.commit({"app.txt": "version 2\n", "more.txt": "more\n"}, "second")
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(git.cwd), str(bare))
    return bare, [first, second]


def _repo(bare: Path, commit: str) -> Repository:
    return Repository(name="proj", url=f"file://{bare}", commit=commit, ref="refs/heads/master")


def _checkout(**inputs: str) -> object:
    return step(
        "checkout", None, kind="checkout", display_name="Checkout proj", inputs={"repository": "self", **inputs}
    )


SHOW = (
    'cat app.txt\ngit rev-parse HEAD\ngit rev-list --count HEAD\ngit config --get http.extraHeader || echo "no header"'
)


def test_checkout_of_an_exact_commit_is_shallow(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (_first, second) = origin
    _, rec = run(job(_checkout(), script("show", SHOW), repository=_repo(bare, second)))
    assert rec.result("checkout") == SUCCEEDED, rec.text("checkout")
    assert rec.logs["show"][-5:-1] == ["version 2", second, "1", "no header"]


def test_checkout_of_an_older_commit_with_full_history(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (first, second) = origin
    _, rec = run(job(_checkout(fetchDepth="0"), script("show", SHOW), repository=_repo(bare, first)))
    assert rec.logs["show"][-5:-2] == ["version 1", first, "1"]
    _, rec = run(job(_checkout(fetchDepth="0"), script("show", SHOW), repository=_repo(bare, second)))
    assert rec.logs["show"][-3] == "2"


def test_persist_credentials_keeps_the_token_header_for_scripts(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (_first, second) = origin
    _, rec = run(job(_checkout(persistCredentials="true"), script("show", SHOW), repository=_repo(bare, second)))
    assert rec.logs["show"][-2] == "Authorization: Bearer ***"


def test_implicit_checkout_for_regular_jobs(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (first, _second) = origin
    _, rec = run(job(script("show", "cat app.txt"), repository=_repo(bare, first)))
    assert rec.events[0] == ("started", "__checkout")
    assert rec.result("__checkout") == SUCCEEDED
    assert "version 1" in rec.logs["show"]


def test_no_implicit_checkout_for_deployment_jobs(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (first, _second) = origin
    spec = job(
        script("show", "ls -A | wc -l"), repository=_repo(bare, first), variables={"System.JobKind": "deployment"}
    )
    _, rec = run(spec)
    assert "__checkout" not in rec.results
    assert rec.logs["show"][-2] == "0"


def test_checkout_none(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (first, _second) = origin
    _, rec = run(job(_checkout(repository="none"), script("show", "ls -A | wc -l"), repository=_repo(bare, first)))
    assert "__checkout" not in rec.results
    assert rec.logs["show"][-2] == "0"


def test_checkout_path_moves_the_sources(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, (first, _second) = origin
    spec = job(_checkout(path="src/proj"), script("show", 'pwd\necho "$BUILD_SOURCESDIRECTORY"\ncat app.txt'),
               repository=_repo(bare, first))  # fmt: skip
    _, rec = run(spec)
    assert rec.logs["show"][-4].endswith("/src/proj") and rec.logs["show"][-3] == rec.logs["show"][-4]
    assert rec.logs["show"][-2] == "version 1"


def test_checkout_of_a_missing_commit_fails(run: Runner, origin: tuple[Path, list[str]]) -> None:
    bare, _ = origin
    outcome, rec = run(job(_checkout(), repository=_repo(bare, "0" * 40)))
    assert rec.result("checkout") == FAILED
    assert outcome.result == FAILED
    # the sync runs as one sandboxed process; the log still shows each git command and which one failed
    log = rec.text("checkout")
    assert "Initialized an empty repository with the remote origin " in log  # written by the agent (issue 15)
    assert "[command]git fetch --force --no-tags" in log
    assert "##[error]git fetch --force --no-tags --no-recurse-submodules origin refs/heads/master failed" not in log
    checkout = "git -c advice.detachedHead=false -c core.fsync=none checkout -q --force --detach "
    assert f"##[error]{checkout}{'0' * 40} failed" in log
    assert any("syncing the repository failed" in message for _, message in rec.issues("checkout"))


def test_checkout_sync_takes_one_step_process(
    run: Runner, origin: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 15: one sandbox set-up per checkout, not one per git command."""
    checkout = importlib.import_module("mlyard.agent.steps.checkout")
    started: list[list[str]] = []
    real = checkout.run_process
    monkeypatch.setattr(checkout, "run_process", lambda argv, **kw: started.append(argv) or real(argv, **kw))
    bare, commits = origin
    outcome, rec = run(job(_checkout(), repository=_repo(bare, commits[1])))
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert len(started) == 1


@pytest.fixture
def tools(git: Git, tmp_path: Path) -> Repository:
    """A second bare repository (a repository resource named `tools`)."""
    work = tmp_path / "tools-work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    commit = git.commit({"tool.txt": "tool 1\n"}, "tool", cwd=work)
    bare = tmp_path / "tools.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return Repository(name="tools", url=f"file://{bare}", commit=commit, ref="refs/heads/main")


def test_multi_checkout_puts_each_repository_in_its_folder(
    run: Runner, origin: tuple[Path, list[str]], tools: Repository
) -> None:
    """"Check out multiple repositories": with two checkout steps, $(Build.SourcesDirectory)/<repo name>."""
    bare, (first, _second) = origin
    show = 'cd "$BUILD_SOURCESDIRECTORY"\nls\ncat proj/app.txt tools/tool.txt'
    second = step("tools", None, kind="checkout", display_name="Checkout tools", inputs={"repository": "tools"})
    spec = job(_checkout(), second, script("show", show), repository=_repo(bare, first), repositories={"tools": tools})
    _, rec = run(spec)
    assert rec.result("tools") == SUCCEEDED, rec.text("tools")
    assert rec.logs["show"][-5:-1] == ["proj", "tools", "version 1", "tool 1"]


def test_single_checkout_of_a_repository_resource_fills_the_sources_directory(
    run: Runner, origin: tuple[Path, list[str]], tools: Repository
) -> None:
    bare, (first, _second) = origin
    spec = job(_checkout(repository="tools"), script("show", "cat tool.txt"),
               repository=_repo(bare, first), repositories={"tools": tools})  # fmt: skip
    _, rec = run(spec)
    assert "tool 1" in rec.logs["show"]
    _, rec = run(job(_checkout(repository="other"), repository=_repo(bare, first)))
    assert rec.result("checkout") == FAILED
    assert "checkout 'other': the server sent no repository resource 'other'" in rec.text("checkout")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/git/app.git", 'file:///srv/a "quoted" \\ path;#x'])
def test_the_repository_the_agent_writes_is_what_git_init_and_remote_add_write(tmp_path: Path, url: str) -> None:
    """issue 15: the checkout writes the empty repository itself (two git processes fewer per checkout)."""
    checkout = importlib.import_module("mlyard.agent.steps.checkout")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir(), theirs.mkdir()
    checkout.init_repository(ours, url)
    env = {**os.environ, "GIT_TEMPLATE_DIR": "", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "."], cwd=theirs, env=env, check=True)
    subprocess.run(["git", "remote", "add", "origin", url], cwd=theirs, env=env, check=True)

    def state(folder: Path) -> tuple[str, list[str]]:
        listed = subprocess.run(["git", "config", "--local", "--list"], cwd=folder, env=env, check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
        files = sorted(str(p.relative_to(folder)) for p in (folder / ".git").rglob("*"))
        return listed, files

    assert state(ours) == state(theirs)
    assert (ours / ".git" / "HEAD").read_text() == (theirs / ".git" / "HEAD").read_text()
