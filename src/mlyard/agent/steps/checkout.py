"""`checkout: self`: the exact commit of the run, fetched over git smart HTTP with the job's token;
`checkout: alias`: a repository resource at the commit pinned when the run started.

Layout as in Azure ("Check out multiple repositories"): a job with one checkout step puts the repository
in $(Build.SourcesDirectory); with more than one, each goes to $(Build.SourcesDirectory)/<repository name>
(`path:` chooses another folder under $(Pipeline.Workspace)).

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
from mlyard.protocol import SUCCEEDED, SUCCEEDED_WITH_ISSUES, Repository, StepSpec

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


def _local_origin(repo: Repository) -> list[Path]:
    """A repository given as a file:// URL (tests, a server on the same machine) is readable in the sandbox."""
    if not repo.url.startswith("file://"):
        return []
    return [Path(urlparse(repo.url).path)]


def _repository(job: JobState, alias: str) -> Repository:
    if alias.lower() == "self":
        if job.spec.repository is None:
            raise StepError("this job has no repository to check out (the server sent none)")
        return job.spec.repository
    found = job.spec.repositories.get(alias)
    if found is None:
        raise StepError(f"checkout '{alias}': the server sent no repository resource '{alias}'")
    return found


def _checkouts(job: JobState) -> int:
    """How many checkout steps of the job check out a repository (not `none`)."""
    return sum(
        1 for s in job.spec.steps if s.kind == "checkout" and str(s.inputs.get("repository", "self")).lower() != "none"
    )


def checkout(step: StepSpec, job: JobState, run: StepRun) -> str:
    alias = step_input(job, step, "repository", "self").strip()
    if alias.lower() == "none":
        job.log.write(step, "checkout: none: nothing to check out")
        return SUCCEEDED
    repo = _repository(job, alias)
    sources = Path(job.variables.get("Build.SourcesDirectory") or str(job.workspace.sources))
    target = _place_sources(job, step, alias.lower() == "self")
    if target is None:
        target = sources / repo.name if _checkouts(job) > 1 else sources
    target = inside_work_dir(job, str(target), "the checkout directory")
    target.mkdir(parents=True, exist_ok=True)
    _fetch(job, step, run, repo, target)
    if step_input(job, step, "persistCredentials", "false").lower() == "true":
        _persist_credentials(job, target)
    result = SUCCEEDED
    for option in ("lfs", "submodules"):
        if step_input(job, step, option, "false").lower() not in ("false", ""):
            run.warning(f"checkout option '{option}' is not supported by the mlyard agent and was ignored")
            result = SUCCEEDED_WITH_ISSUES
    return result


# The whole sync runs as one sandboxed process (one sandbox set-up instead of one per git command): the
# fetch of the commit (of the branch when the server refuses commits by id) and the checkout. Values come in
# as positional parameters, never inside the script text. A fresh clone needs no housekeeping: the fetches
# start no `git maintenance` / `gc --auto` process. The empty repository with its `origin` remote is written
# by the agent itself (what `git init` without templates and `git remote add origin URL` write: two git
# processes fewer); into a folder that is a repository already, those two commands run as before. Nothing is
# fsynced (core.fsync=none: git 2.36+ syncs a fetched pack and its index by default): the job's directory is
# deleted at its end, and a crash loses the job anyway.
_SYNC_SCRIPT = r"""
git=$1 url=$2 commit=$3 ref=$4 tags=$5 depth=$6 init=$7
run() {
    printf '[command]git %s\n' "$*"
    "$git" "$@" && return 0
    code=$?
    printf '##[error]git %s failed with exit code %s\n' "$*" "$code"
    exit "$code"
}
if [ "$init" = 1 ]; then
    printf '[command]git init -q .\n'
    if ! GIT_TEMPLATE_DIR= "$git" init -q .; then
        printf '##[error]git init -q . failed\n'
        exit 1
    fi
    run remote add origin "$url"
fi
printf '[command]git fetch --force %s --prune --no-recurse-submodules %s origin %s\n' "$tags" "$depth" "$commit"
if ! "$git" -c maintenance.auto=false -c gc.auto=0 -c core.fsync=none fetch --force "$tags" --prune \
        --no-recurse-submodules ${depth:+"$depth"} origin "$commit"; then
    run -c maintenance.auto=false -c gc.auto=0 -c core.fsync=none fetch --force "$tags" --no-recurse-submodules \
        origin "$ref"
fi
run -c advice.detachedHead=false -c core.fsync=none checkout -q --force --detach "$commit"
"""

# What `git init` writes without templates (git 2.x, SHA-1, a non-bare repository on a POSIX file system)
_EMPTY_REPOSITORY_CONFIG = (
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n"
)


def _config_value(value: str) -> str:
    """`value` quoted for a git config file."""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise StepError(f"the repository URL {value!r} has a control character")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_repository(target: Path, url: str) -> None:
    """An empty repository in `target` whose remote `origin` is `url`: the files `git init` (without
    templates) and `git remote add origin URL` write."""
    git_dir = target / ".git"
    for folder in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        (git_dir / folder).mkdir(parents=True, exist_ok=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/master\n", encoding="utf-8")
    remote = f'[remote "origin"]\n\turl = {_config_value(url)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'
    (git_dir / "config").write_text(_EMPTY_REPOSITORY_CONFIG + remote, encoding="utf-8")


def _fetch(job: JobState, step: StepSpec, run: StepRun, repo: Repository, target: Path) -> None:
    depth = step_input(job, step, "fetchDepth", str(DEFAULT_FETCH_DEPTH)).strip()
    depth_arg = f"--depth={depth}" if depth.isdigit() and int(depth) > 0 else ""
    tags = "--tags" if step_input(job, step, "fetchTags", "false").lower() == "true" else "--no-tags"
    job.log.write(step, f"Syncing repository: {repo.name} ({repo.url}) at {repo.commit} into {target}")
    fresh = not (target / ".git").exists()
    if fresh:
        init_repository(target, repo.url)
        job.log.write(step, f"Initialized an empty repository with the remote origin {repo.url}")
    git = shutil.which("git") or "git"
    argv = ["/bin/sh", "-c", _SYNC_SCRIPT, "sync", git, repo.url, repo.commit, repo.ref, tags, depth_arg,
            "0" if fresh else "1"]  # fmt: skip
    timeout = step.timeout_in_minutes * job.minute if step.timeout_in_minutes > 0 else None
    end = run_process(argv, cwd=target, env=_git_env(job, step), job=job, run=run, timeout_seconds=timeout,
                      readable=_local_origin(repo))  # fmt: skip
    if end.exit_code != 0:
        raise StepError(f"syncing the repository failed: git exited with code {end.exit_code} (see the log above)")


def _place_sources(job: JobState, step: StepSpec, is_self: bool) -> Path | None:
    """`path:` puts the checkout under $(Pipeline.Workspace) (for `self`, the sources variables follow it)."""
    path = step_input(job, step, "path").strip()
    if not path:
        return None
    target = (job.workspace.root / path).resolve()
    if target != job.workspace.root and job.workspace.root not in target.parents:
        raise StepError(f"checkout path '{path}' must stay inside $(Pipeline.Workspace)")
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise StepError(f"checkout path '{path}' is not empty")
    if is_self:
        for name in ("Build.SourcesDirectory", "Build.Repository.LocalPath", "System.DefaultWorkingDirectory"):
            job.variables.put(name, str(target))
    return target


def _persist_credentials(job: JobState, target: Path) -> None:
    """Write the token's header into the checkout's own git config (not through argv)."""
    config = inside_work_dir(job, str(target), "the checkout directory") / ".git" / "config"
    with config.open("a") as handle:
        handle.write(f"[http]\n\textraHeader = Authorization: Bearer {job.spec.access_token}\n")
