"""`mlyard projects update`: bring the platform's current template into an existing project, for review.

Runs where the CLI runs, as a remote user (git and the REST API with the user's token), like the
project creator: clone the project's default branch and the platform's `ml-project-template`,
`copier update` the clone on a new branch, commit once, push the branch. The push is an ordinary
push: it starts the project's pipelines whose CI trigger matches the branch and the changed paths.
Conflicts (the team changed lines the template changed too) stay in the files as copier's inline
markers; the branch is pushed all the same and the files are listed, for the team to resolve on it.

Trust: only the platform's template is rendered; the answers' `_src_path` is replaced by it before
copier reads the answers (see `mlyard.scaffold.update`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlyard.client import Client
from mlyard.creator import PIPELINES, TEMPLATE_REPO
from mlyard.errors import Conflict, InvalidInput
from mlyard.git.worktree import WorkTree
from mlyard.names import check_branch_name, check_repo_name
from mlyard.pipelines.errors import PipelineError
from mlyard.scaffold.render import ANSWERS_FILE
from mlyard.scaffold.update import Answers, copier_update, files_with_markers, read_answers, set_src_path
from mlyard.views import ProjectUpdateView, PushedPipeline, RunSummary

BRANCH_PREFIX = "mlyard/template-update-"
RUN_WAIT_SECONDS = 15.0  # how long to wait for the runs the push should start
RUNS_LOOKED_AT = 20  # recent runs of a pipeline searched for the branch's run


def update_project(
    api: Client, *, username: str, repo_name: str, branch: str | None = None, say: Callable[[str], None] = print
) -> ProjectUpdateView:
    """Push a branch of `repo_name` updated to the platform's current template; what was done."""
    check_repo_name(repo_name)
    if branch is not None:
        check_branch_name(branch)
    repo = api.repos.get(repo_name)
    template = api.repos.get(TEMPLATE_REPO)
    base = repo.default_branch
    result = ProjectUpdateView(repo=repo_name, base_branch=base, template=template.clone_url)
    with tempfile.TemporaryDirectory(prefix="mlyard-update-") as tmp:
        say(f"cloning {repo_name} ({base})")
        project = WorkTree.clone(repo.clone_url, Path(tmp) / "project", username=username, token=api.token,
                                 branch=base)  # fmt: skip
        answers = read_answers(project.path, where=f"{repo_name} ({base})")
        if answers.src_path not in (None, template.clone_url):
            result.ignored_src_path = answers.src_path
            say(f"note: {ANSWERS_FILE} names the template {answers.src_path}; "
                f"the platform's template {template.clone_url} is used instead")  # fmt: skip
        say(f"cloning the platform's template {TEMPLATE_REPO} ({template.default_branch})")
        source = WorkTree.clone(template.clone_url, Path(tmp) / "template", username=username, token=api.token,
                                branch=template.default_branch)  # fmt: skip
        from_commit = source.resolve(answers.commit)
        if from_commit is None:
            raise InvalidInput(
                f"{repo_name} ({base}): {ANSWERS_FILE} says the project was rendered from template revision "
                f"{answers.commit!r}, which {TEMPLATE_REPO} does not have (was its history rewritten?): set "
                f"_commit to the {TEMPLATE_REPO} commit the project matches, then run this again"
            )
        result.from_commit, result.to_commit = from_commit, source.resolve("HEAD") or ""
        _register_missing(api, project.path, result, say)
        if from_commit == result.to_commit:
            result.up_to_date = True
            say(f"{repo_name} is up to date with {TEMPLATE_REPO} {from_commit[:7]}: nothing to do")
            return result
        name = branch or f"{BRANCH_PREFIX}{result.to_commit[:7]}"
        if project.has_remote_branch(name):
            raise Conflict(
                f"branch {name!r} already exists in {repo_name}: review or merge it, delete it "
                f"(`git push origin --delete {name}`), or pass --branch with another name"
            )
        _update(project, result, name, answers, template_path=str(source.path), say=say)
        _expected_runs(api, project, result, message=project.git("log", "-1", "--format=%B").strip())
    _wait_for_runs(api, result, say)
    return result


def _register_missing(api: Client, project: Path, result: ProjectUpdateView, say: Callable[[str], None]) -> None:
    """Register the creator's pipelines (`<repo>-<kind>`, folder `<repo>`) whose file is on the default branch
    but which are not registered: a project older than a pipeline of the template gets it once the update
    that added the file is merged (and `mlyard projects update` runs again)."""
    names = {pipeline.name for pipeline in api.pipelines.list()}
    for kind in PIPELINES:
        name, yaml_path = f"{result.repo}-{kind}", f"mlops/pipelines/{kind}.yml"
        if name in names or not (project / yaml_path).is_file():
            continue
        api.pipelines.create(name, repo=result.repo, folder=result.repo, yaml=yaml_path)
        result.registered.append(name)
        say(f"registered pipeline {result.repo}/{name} ({yaml_path} of {result.base_branch})")


def _update(project: WorkTree, result: ProjectUpdateView, name: str, answers: Answers, *, template_path: str,
            say: Callable[[str], None]) -> None:  # fmt: skip
    """On branch `name`: copier update, one commit with the template's changes, pushed."""
    project.git("checkout", "--quiet", "-b", name)
    base_sha = project.git("rev-parse", "HEAD").strip()
    set_src_path(project.path, template_path, answers=answers)  # copier reads the template from here only
    project.commit_all("answers pointing at the platform's template (squashed below)")
    say(f"running copier update: {TEMPLATE_REPO} {result.from_commit[:7]} -> {result.to_commit[:7]}")
    copier_update(project.path)
    unmerged = project.unmerged_paths()
    set_src_path(project.path, result.template)
    project.git("add", "--all", ".")
    project.git("reset", "--quiet", "--soft", base_sha)
    result.changed_files = project.changed_paths(base_sha)
    rejects = [path for path in result.changed_files if path.endswith(".rej")]
    result.conflicts = sorted({*unmerged, *rejects, *files_with_markers(project.path, result.changed_files)})
    message = f"Update from {TEMPLATE_REPO} {result.to_commit[:7]} (was {result.from_commit[:7]})"
    if result.conflicts:
        message += "\n\nConflicts to resolve on this branch:\n" + "".join(f"  {p}\n" for p in result.conflicts)
        say(f"conflicts in {len(result.conflicts)} file(s), pushed for the team to resolve on the branch: "
            + ", ".join(result.conflicts))  # fmt: skip
    result.commit = project.commit_all(message)
    say(f"pushing branch {name} ({len(result.changed_files)} file(s) changed)")
    project.push_new_branch(name)
    result.branch = name


def _expected_runs(api: Client, project: WorkTree, result: ProjectUpdateView, *, message: str) -> None:
    """Which of the project's pipelines the push triggers, read from their files in the pushed branch."""
    from mlyard.pipelines.parser import load_trigger
    from mlyard.pipelines.triggers import trigger_decision

    ref = f"refs/heads/{result.branch}"
    for pipeline in api.pipelines.list():
        if pipeline.repo != result.repo:
            continue
        entry = PushedPipeline(pipeline=pipeline.name)
        path = project.path / pipeline.yaml_path
        if not path.is_file():
            entry.reason = f"{pipeline.yaml_path} is not in the branch"
        else:
            try:
                trigger = load_trigger(path, name=pipeline.yaml_path)
                decision = trigger_decision(trigger, ref, result.changed_files, message)
                entry.triggers, entry.reason = decision.run, decision.reason
            except PipelineError as exc:
                entry.reason = f"its trigger cannot be read: {exc.message}"
        result.pipelines.append(entry)


def _wait_for_runs(api: Client, result: ProjectUpdateView, say: Callable[[str], None]) -> None:
    """Find the run each triggered pipeline started for the pushed commit (bounded wait)."""
    ref = f"refs/heads/{result.branch}"
    waiting = [p for p in result.pipelines if p.triggers]
    deadline = time.monotonic() + RUN_WAIT_SECONDS
    while waiting and time.monotonic() < deadline:
        for entry in list(waiting):
            runs = api.runs.list(pipeline=entry.pipeline, limit=RUNS_LOOKED_AT)
            entry.run = _run_of(runs, ref, result.commit or "")
            if entry.run is not None:
                waiting.remove(entry)
        if waiting:
            time.sleep(0.2)
    for entry in result.pipelines:
        if entry.run is not None:
            say(f"{entry.pipeline}: run {entry.run.id} ({entry.run.state}) for {result.branch}")
        elif entry.triggers:
            say(f"{entry.pipeline}: no run seen within {RUN_WAIT_SECONDS:.0f} s; see `mlyard runs list`")
        else:
            say(f"{entry.pipeline}: no run ({entry.reason})")


def _run_of(runs: list[RunSummary], ref: str, commit: str) -> RunSummary | None:
    return next((r for r in runs if r.source_branch == ref and r.source_version == commit), None)

