"""What the ML project creator pipeline does, as a remote user: through git and the REST API only.

validate -> render the platform's ml-project-template repo with copier, while the repo is created and
`<repo>-deploy-code`, `<repo>-promote-model`, `<repo>-deploy-model`, `<repo>-batch-inference`,
`<repo>-monitor` are registered in folder `<repo>` -> push the first commit, which starts
`<repo>-deploy-code` run #1. If a step fails (the render included) after the repo exists, the pipelines
and the repo it created are removed again and the error names the step.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlyard.client import Client
from mlyard.errors import Conflict, InvalidInput, MlyardError, NotFound, OperationFailed
from mlyard.names import check_repo_name
from mlyard.protocol import State
from mlyard.views import EnvironmentView, RepoView, RunSummary, RunView

TEMPLATE_REPO = "ml-project-template"
PROBLEM_TYPES = ("binary", "multiclass", "regression")  # the template's `problem_type` choices
PIPELINES = ("deploy-code", "promote-model", "deploy-model", "batch-inference", "monitor")


def check_model_name(name: str) -> str:
    """The model is registered in MLflow under the repo's name: it must be a valid MLflow model name too."""
    check_repo_name(name)
    if any(ch in name for ch in "/:%"):  # MLflow's own rule; the repository rule already excludes them
        raise InvalidInput(f"invalid model name {name!r}: MLflow model names cannot contain '/', ':' or '%'")
    return name


def check_problem_type(problem_type: str) -> str:
    if problem_type not in PROBLEM_TYPES:
        raise InvalidInput(f"invalid problem type {problem_type!r}: use one of {', '.join(PROBLEM_TYPES)}")
    return problem_type


def preflight(api: Client, repo_name: str, env_name: str, problem_type: str = "binary") -> EnvironmentView:
    """Checks that need no change: the name, the problem type, the environment, and that the repo does not
    exist yet."""
    check_model_name(repo_name)
    check_problem_type(problem_type)
    env = api.environments.get(env_name)
    try:
        api.repos.get(repo_name)
    except NotFound:
        return env
    raise Conflict(f"repository {repo_name!r} already exists: pick another name for the new project")


@contextmanager
def git_auth(username: str, token: str) -> Iterator[None]:
    """Let git subprocesses (copier's clone) authenticate with the token, through the environment only."""
    from mlyard.git.remote import auth_env

    extra = {k: v for k, v in auth_env(username, token).items() if k.startswith("GIT_CONFIG_")}
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_project(
    api: Client,
    *,
    username: str,
    repo_name: str,
    env_name: str,
    demo: bool,
    problem_type: str = "binary",
    say: Callable[[str], None] = print,
    requested_for: str = "",
) -> dict[str, Any]:
    """Create the project; returns what was created (repo, pipelines, the runs its first push started).

    `requested_for`: who asked for the project (the creator run's Build.RequestedFor); the runs of the first
    push are requested for them, not for the creator's service user."""
    from mlyard.git.remote import push_directory
    from mlyard.scaffold.render import default_answers, render_project

    preflight(api, repo_name, env_name, problem_type)
    template = api.repos.get(TEMPLATE_REPO)
    branch = template.default_branch
    answers = default_answers(
        repo_name, environment=env_name, demo=demo, default_branch=branch, problem_type=problem_type
    )
    created = _Created()
    with tempfile.TemporaryDirectory(prefix="mlyard-create-") as tmp:
        project = Path(tmp) / repo_name
        say(f"rendering {template.clone_url} for {repo_name} (environment {env_name}, {problem_type}, demo {demo})")
        # The repository and its pipelines are created while the template renders: API calls that the server
        # answers on the other core (0.1 s). A render that fails removes them again, as a later failure does.
        with ThreadPoolExecutor(1, thread_name_prefix="mlyard-create") as pool:
            registering = pool.submit(_register, api, created, repo_name, branch, say)
            try:
                with git_auth(username, api.token):
                    render_project(template.clone_url, project, answers, vcs_ref="HEAD")
            except BaseException as exc:
                with suppress(BaseException):
                    registering.result()
                if isinstance(exc, MlyardError):
                    raise type(exc)(f"{exc.message.rstrip('.')}; {created.undo(api, repo_name)}") from exc
                created.undo(api, repo_name)
                raise
            try:
                repo = registering.result()
                created.step = "pushing the first commit"
                push_directory(
                    repo.clone_url, username=username, token=api.token, source=project, branch=branch,
                    message=f"Create {repo_name} from {TEMPLATE_REPO}",
                    push_options=(f"requested-for={requested_for}",) if requested_for else (),
                )  # fmt: skip
                say(f"pushed the first commit to {repo_name} ({branch})")
            except BaseException as exc:
                if created.repo is None and isinstance(exc, MlyardError):
                    raise  # the repository could not be created (made meanwhile by someone else: 409): nothing was
                detail = exc.message if isinstance(exc, MlyardError) else str(exc)
                raise OperationFailed(f"creating project {repo_name!r} failed while {created.step}: {detail}; "
                                      f"{created.undo(api, repo_name)}") from exc  # fmt: skip
    made = created.pipelines
    return {"repo": repo.to_dict(), "pipelines": made, "folder": repo_name, "environment": env_name, "demo": demo,
            "problem_type": problem_type, **started_runs(api, repo_name, made)}  # fmt: skip


@dataclass
class _Created:
    """What create_project has created so far, and what it was doing."""

    repo: RepoView | None = None
    pipelines: list[str] = field(default_factory=list)
    step: str = "creating the repository"

    def undo(self, api: Client, repo_name: str) -> str:
        """Remove it again; says what was removed, or what could not be."""
        return rollback(api, repo_name, self.pipelines) if self.repo else "nothing was left behind"


def _register(api: Client, created: _Created, repo_name: str, branch: str, say: Callable[[str], None]) -> RepoView:
    """Create the repository and register its pipelines, noting each in `created`."""
    created.repo = api.repos.create(repo_name, default_branch=branch)
    say(f"created repository {repo_name}")
    for kind in PIPELINES:
        name = f"{repo_name}-{kind}"
        created.step = f"registering pipeline {name}"
        api.pipelines.create(name, repo=repo_name, folder=repo_name, yaml=f"mlops/pipelines/{kind}.yml")
        created.pipelines.append(name)
        say(f"registered pipeline {repo_name}/{name}")
    return created.repo


def rollback(api: Client, repo_name: str, pipelines: list[str]) -> str:
    problems = []
    for name in reversed(pipelines):
        try:
            api.pipelines.delete(name)
        except MlyardError as exc:
            problems.append(f"pipeline {name}: {exc.message}")
    try:
        api.repos.delete(repo_name)
    except MlyardError as exc:
        problems.append(f"repository {repo_name}: {exc.message}")
    if problems:
        return "could not remove everything it created: " + "; ".join(problems)
    removed = ", ".join([*pipelines, f"repository {repo_name}"])
    return f"nothing was left behind (removed {removed})"


def started_runs(api: Client, repo_name: str, pipelines: list[str], timeout: float = 15.0) -> dict[str, Any]:
    """The runs the first push started, once none is still queued: `deploy_code_run` (run #1 of
    `<repo>-deploy-code`), `runs` (all of them, oldest first) and `waiting` (each run that waits for
    permission or approval, with the exact command that lets it go on)."""
    deadline = time.monotonic() + timeout
    deploy_code = f"{repo_name}-deploy-code"
    # Until the push's deploy-code run has left the queue, one request a look (each list costs the server ~8 ms
    # of CPU, while it compiles and starts that run): then all the pipelines, mostly once.
    while deploy_code in pipelines and time.monotonic() < deadline:
        if any(run.state not in (State.QUEUED, State.NOT_STARTED) for run in api.runs.list(pipeline=deploy_code)):
            break
        time.sleep(0.1)
    found: list[RunSummary] = []
    while True:
        found = [run for name in pipelines for run in api.runs.list(pipeline=name)]
        started = any(run.pipeline == f"{repo_name}-deploy-code" for run in found)
        pending = any(run.state in (State.QUEUED, State.NOT_STARTED) for run in found)
        if (started and not pending) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    runs = [api.runs.get(run.id) for run in sorted(found, key=lambda run: run.id)]
    first = next((run for run in runs if run.pipeline == f"{repo_name}-deploy-code"), None)
    waiting = [waiting_entry(run) for run in runs if run.state == State.WAITING]
    return {"deploy_code_run": first.to_dict() if first else None, "runs": [run.to_dict() for run in runs],
            "waiting_runs": waiting}  # fmt: skip


def waiting_entry(run: RunView) -> dict[str, Any]:
    """What a waiting run waits for and the command that lets it go on."""
    if run.waiting_for:
        return {"run": run.id, "pipeline": run.pipeline, "waiting_for": list(run.waiting_for),
                "command": f"mlyard runs permit {run.id}"}  # fmt: skip
    return {"run": run.id, "pipeline": run.pipeline, "waiting_for": ["approval"],
            "command": f"mlyard runs approve {run.id}"}  # fmt: skip
