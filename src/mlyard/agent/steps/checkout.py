"""`checkout: self`: the exact commit of the run, fetched over git smart HTTP with the job's token.

The token travels in an `http.extraHeader` given through GIT_CONFIG_COUNT/KEY/VALUE environment
variables, never in argv or in the remote URL; with `persistCredentials: true` it is also written to the
checkout's git config so that scripts can use `git fetch`/`git push` later, as Azure does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

from mlyard.agent.environment import inside_work_dir, step_environment, step_input
from mlyard.agent.process import run_process
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import SUCCEEDED, SUCCEEDED_WITH_ISSUES, StepSpec

DEFAULT_FETCH_DEPTH = 1


def _git_env(job: JobState, step: StepSpec) -> dict[str, str]:
    env = step_environment(job, step)
    count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    env.update({
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "http.extraHeader",
        f"GIT_CONFIG_VALUE_{count}": f"Authorization: Bearer {job.spec.access_token}",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
    })  # fmt: skip
    return env


def _git(job: JobState, step: StepSpec, run: StepRun, *args: str, check: bool = True) -> int:
    argv = [shutil.which("git") or "git", *args]
    job.log.write(step, "[command]git " + " ".join(args))
    timeout = step.timeout_in_minutes * job.minute if step.timeout_in_minutes > 0 else None
    cwd = inside_work_dir(job, job.variables.get("Build.SourcesDirectory") or str(job.workspace.sources),
                          "the checkout directory")  # fmt: skip
    end = run_process(argv, cwd=cwd, env=_git_env(job, step), job=job, run=run, timeout_seconds=timeout,
                      readable=_local_origin(job))  # fmt: skip
    if check and end.exit_code != 0:
        raise StepError(f"git {args[0]} failed with exit code {end.exit_code}")
    return end.exit_code


def _local_origin(job: JobState) -> list[Path]:
    """A repository given as a file:// URL (tests, a server on the same machine) is readable in the sandbox."""
    repo = job.spec.repository
    if repo is None or not repo.url.startswith("file://"):
        return []
    return [Path(urlparse(repo.url).path)]


def checkout(step: StepSpec, job: JobState, run: StepRun) -> str:
    repository = step_input(job, step, "repository", "self").strip()
    if repository.lower() == "none":
        job.log.write(step, "checkout: none: nothing to check out")
        return SUCCEEDED
    if repository.lower() != "self":
        raise StepError(f"checkout of repository '{repository}' is not supported; only 'self' and 'none' are")
    repo = job.spec.repository
    if repo is None:
        raise StepError("this job has no repository to check out (the server sent none)")
    _place_sources(job, step)
    depth = step_input(job, step, "fetchDepth", str(DEFAULT_FETCH_DEPTH)).strip()
    depth_args = [f"--depth={depth}"] if depth.isdigit() and int(depth) > 0 else []
    tags = ["--tags"] if step_input(job, step, "fetchTags", "false").lower() == "true" else ["--no-tags"]
    job.log.write(step, f"Syncing repository: {repo.name} ({repo.url}) at {repo.commit}")
    _git(job, step, run, "init", "-q", ".")
    _git(job, step, run, "remote", "add", "origin", repo.url)
    fetched = _git(job, step, run, "fetch", "--force", *tags, "--prune", "--no-recurse-submodules", *depth_args,
                   "origin", repo.commit, check=False)  # fmt: skip
    if fetched != 0:  # a server that refuses to serve commits by id: fetch the branch instead
        _git(job, step, run, "fetch", "--force", *tags, "--no-recurse-submodules", "origin", repo.ref)
    _git(job, step, run, "-c", "advice.detachedHead=false", "checkout", "-q", "--force", "--detach", repo.commit)
    if step_input(job, step, "persistCredentials", "false").lower() == "true":
        _persist_credentials(job)
    result = SUCCEEDED
    for option in ("lfs", "submodules"):
        if step_input(job, step, option, "false").lower() not in ("false", ""):
            run.warning(f"checkout option '{option}' is not supported by the mlyard agent and was ignored")
            result = SUCCEEDED_WITH_ISSUES
    return result


def _place_sources(job: JobState, step: StepSpec) -> None:
    """`path:` moves the checkout under $(Pipeline.Workspace) (the sources variables follow it)."""
    path = step_input(job, step, "path").strip()
    if not path:
        return
    target = (job.workspace.root / path).resolve()
    if target != job.workspace.root and job.workspace.root not in target.parents:
        raise StepError(f"checkout path '{path}' must stay inside $(Pipeline.Workspace)")
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise StepError(f"checkout path '{path}' is not empty")
    for name in ("Build.SourcesDirectory", "Build.Repository.LocalPath", "System.DefaultWorkingDirectory"):
        job.variables.put(name, str(target))


def _persist_credentials(job: JobState) -> None:
    """Write the token's header into the checkout's own git config (not through argv)."""
    sources = job.variables.get("Build.SourcesDirectory") or str(job.workspace.sources)
    config = inside_work_dir(job, sources, "the checkout directory") / ".git" / "config"
    with config.open("a") as handle:
        handle.write(f"[http]\n\textraHeader = Authorization: Bearer {job.spec.access_token}\n")
