"""`resources:` on the real engine (real bare repos, real pushes): templates and checkouts of other hosted
repositories pinned at their ref, repositories that are not hosted, container jobs without an engine,
and pipeline completion triggers."""

from __future__ import annotations

import os
import types

import pytest
from sqlalchemy import select

from mlyard.ci.completion import RESOURCE_TRIGGER
from mlyard.db.engine import transaction
from mlyard.db.tables import Run, RunJob
from mlyard.errors import NotFound
from mlyard.services import jobs, runs
from tests.ci.engine import Engine

USES_TEMPLATES = """trigger: none
resources:
  repositories:
  - repository: tools
    type: git
    name: Platform/Build-Tools
    ref: refs/heads/stable
steps:
- checkout: self
- checkout: tools
- template: steps/build.yml@tools
  parameters: {what: app}
"""
BUILD = "parameters:\n- name: what\nsteps:\n- template: inner.yml\n  parameters:\n    what: ${{ parameters.what }}\n"
INNER = "parameters:\n- name: what\nsteps:\n- script: echo building ${{ parameters.what }} with tools v1\n"


def _run_row(engine: Engine, run_id: int) -> Run:
    with transaction(engine.platform.sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None
        session.expunge(run)
        return run


def test_templates_and_checkout_of_another_repository_at_its_ref(engine: Engine) -> None:
    tools = engine.repo("build-tools", {"steps/build.yml": BUILD, "steps/inner.yml": INNER})
    engine.git("checkout", "-q", "-b", "stable", cwd=tools)
    pinned = engine.git.commit({"README": "stable\n"}, "stable", cwd=tools)
    engine.push("build-tools", tools, "stable")
    engine.git("checkout", "-q", "master", cwd=tools)  # master moves on: the run uses `stable`
    engine.git.commit({"steps/inner.yml": INNER.replace("v1", "v2")}, "v2", cwd=tools)
    engine.push("build-tools", tools, "master")
    engine.repo("secrets", {"x": "x"})
    engine.repo("app", {"ci.yml": USES_TEMPLATES})
    engine.pipeline("app-ci", "app", "ci.yml")
    run_id = engine.run("app-ci")
    spec = engine.claim()
    assert spec is not None, _run_row(engine, run_id).message
    steps = spec["steps"]
    assert isinstance(steps, list)
    assert [s["inputs"].get("repository") or s["inputs"].get("script") for s in steps] == [
        "self", "tools", "echo building app with tools v1",
    ]  # fmt: skip
    repositories = spec["repositories"]
    assert isinstance(repositories, dict)
    assert repositories["tools"]["commit"] == pinned
    assert repositories["tools"]["url"].endswith("/git/build-tools.git")
    # the job's token reads exactly its run's repository and its repository resources
    assert jobs.job_repo_access(engine.platform, str(spec["access_token"])) == {"app", "build-tools"}
    engine.complete(int(str(spec["job_id"])), "succeeded")
    engine.settle()
    assert engine.run_state(run_id) == "succeeded"


def test_a_repository_that_is_not_hosted_fails_the_run_at_its_line(engine: Engine) -> None:
    text = USES_TEMPLATES.replace("Platform/Build-Tools", "Platform/missing").replace("- template", "- tmpl")
    engine.repo("lonely", {"ci.yml": text.split("- tmpl")[0]})
    engine.pipeline("lonely-ci", "lonely", "ci.yml")
    run_id = engine.run("lonely-ci")
    assert engine.run_state(run_id) == "failed"
    assert _run_row(engine, run_id).errors == [
        "ci.yml:4:5: resources.repositories.tools: repository 'Platform/missing' is not hosted by this mlyard "
        "server (no repository 'missing'; a name maps to the repository named by its last segment): push it first"
    ]


def test_a_container_job_fails_clearly_without_a_container_engine(engine: Engine) -> None:
    text = (
        "trigger: none\nresources:\n  containers:\n  - container: py\n    image: python:3.12\n"
        "jobs:\n- job: Test\n  container: py\n  steps:\n  - script: pytest\n"
    )
    engine.repo("boxed", {"ci.yml": text})
    engine.pipeline("boxed-ci", "boxed", "ci.yml")
    run_id = engine.run("boxed-ci")
    assert engine.run_state(run_id) == "failed"
    assert _run_row(engine, run_id).message == (
        "job 'Test' runs in container 'python:3.12': container jobs need a container engine, "
        "and none is configured on this mlyard server"
    )
    assert engine.claim() is None


DEPLOY = """trigger: none
resources:
  pipelines:
  - pipeline: training
    source: '\\ML\\train'
    trigger:
      branches:
        include: [master]
      stages: [Train]
steps:
- script: echo deploying $(resources.pipeline.training.runID)
"""
TRAIN = "trigger: none\nstages:\n- stage: Train\n  jobs:\n  - job: Fit\n    steps:\n    - script: echo fit\n"


def test_a_completion_trigger_runs_the_pipeline_after_a_successful_run(engine: Engine) -> None:
    engine.repo("models", {"train.yml": TRAIN})
    engine.repo("serving", {"deploy.yml": DEPLOY})
    engine.pipeline("train", "models", "train.yml")
    engine.pipeline("deploy", "serving", "deploy.yml")
    failed = engine.run("train")
    engine.drive({"Fit": "failed"})
    assert engine.run_state(failed) == "failed"
    assert _deploy_runs(engine) == []  # a failed run triggers nothing
    upstream = engine.run("train")
    claimed = engine.drive({})
    assert [spec["name"] for spec in claimed] == ["Fit", "Job"]  # Job: the triggered deploy run
    assert engine.run_state(upstream) == "succeeded"
    (triggered,) = _deploy_runs(engine)
    assert (triggered.reason, triggered.source_branch, triggered.state) == (
        RESOURCE_TRIGGER, "refs/heads/master", "succeeded",
    )  # fmt: skip
    assert triggered.variables["resources.pipeline.training.runID"] == str(upstream)
    assert triggered.variables["resources.pipeline.training.pipelineName"] == "train"
    assert triggered.variables["Build.TriggeredBy.BuildId"] == str(upstream)
    assert triggered.variables["Build.TriggeredBy.DefinitionName"] == "train"
    step = claimed[1]["steps"][0]  # type: ignore[index]
    assert step["inputs"]["script"] == "echo deploying $(resources.pipeline.training.runID)"
    assert claimed[1]["variables"]["resources.pipeline.training.runID"] == str(upstream)  # type: ignore[index]
    assert runs.run_state(engine.platform, triggered.id) == "succeeded"


def _deploy_runs(engine: Engine) -> list[Run]:
    with transaction(engine.platform.sessions) as session:
        rows = list(session.scalars(select(Run).where(Run.reason == RESOURCE_TRIGGER).order_by(Run.id)))
        for row in rows:
            session.expunge(row)
        return rows


def test_a_manual_run_downloads_from_the_latest_successful_run_and_no_other(engine: Engine) -> None:
    engine.repo("models2", {"train.yml": TRAIN})
    deploy = "trigger: none\nresources:\n  pipelines:\n  - pipeline: training\n    source: train\nsteps:\n"
    engine.repo("serving2", {"deploy.yml": deploy + "- download: training\n  artifact: m\n"})
    engine.pipeline("train", "models2", "train.yml")
    engine.pipeline("deploy", "serving2", "deploy.yml")
    good = engine.run("train")
    engine.drive({})
    bad = engine.run("train")
    engine.drive({"Fit": "failed"})
    manual = engine.run("deploy")
    (spec,) = engine.drive({})
    variables = spec["variables"]
    assert isinstance(variables, dict)
    assert variables["resources.pipeline.training.runID"] == str(good)  # not the later, failed run
    assert engine.run_state(manual) == "succeeded"
    with transaction(engine.platform.sessions) as session:
        job = session.scalars(select(RunJob).where(RunJob.run_id == manual)).one()
        session.expunge(job)
    assert jobs.resource_run(engine.platform, job, good) == good
    with pytest.raises(NotFound, match=f"run {bad} is not the run of a pipeline resource of this run"):
        jobs.resource_run(engine.platform, job, bad)


def test_completion_triggers_never_loop(engine: Engine) -> None:
    """ping runs when pong succeeds and pong when ping succeeds: one round, then the chain stops."""
    template = "trigger: none\nresources:\n  pipelines:\n  - pipeline: other\n    source: {0}\n    trigger: true\n"
    body = "steps:\n- script: echo hi\n"
    engine.repo("loop", {"ping.yml": template.format("pong") + body, "pong.yml": template.format("ping") + body})
    engine.pipeline("ping", "loop", "ping.yml")
    engine.pipeline("pong", "loop", "pong.yml")
    engine.run("ping")
    claimed = engine.drive({})
    assert len(claimed) == 2  # ping (manual), then pong (ResourceTrigger); ping again would be a loop
    assert [run.reason for run in _deploy_runs(engine)] == [RESOURCE_TRIGGER]


def test_another_repository_is_exported_with_the_same_link_checks(engine: Engine) -> None:
    tools = engine.repo("linked-tools", {"steps.yml": "steps:\n- script: echo tools\n"})
    os.symlink("/outside/the/repo", tools / "passwd")
    engine.git("add", "passwd", cwd=tools)
    head = engine.git.commit({}, "link", cwd=tools)
    engine.push("linked-tools", tools, "master")
    text = "trigger: none\nresources:\n  repositories:\n  - repository: t\n    name: linked-tools\nsteps:\n"
    engine.repo("linking", {"ci.yml": text + "- template: steps.yml@t\n", "plain.yml": text + "- checkout: t\n"})
    engine.pipeline("linking-ci", "linking", "ci.yml")
    engine.pipeline("linking-plain", "linking", "plain.yml")
    run_id = engine.run("linking-ci")
    assert engine.run_state(run_id) == "failed"
    assert _run_row(engine, run_id).message == (
        f"cannot compile the pipeline: cannot read the files of repository 'linked-tools' at {head[:10]}: "
        "'passwd' is a link to an absolute path; remove the link or make it point inside the repository"
    )
    plain = engine.run("linking-plain")  # no template of it: its files are not read (the job checks it out)
    assert engine.run_state(plain) == "running"


def test_inline_checkout_is_pinned_and_checked(engine: Engine) -> None:
    tools = engine.repo("inline-tools", {"a.txt": "a"})
    head = engine.git("rev-parse", "HEAD", cwd=tools).stdout.strip()
    text = "trigger: none\nsteps:\n- checkout: self\n- checkout: git://Platform/Inline-Tools@master\n"
    engine.repo("inline", {"ci.yml": text, "bad.yml": text.replace("Inline-Tools", "nowhere")})
    engine.pipeline("inline-ci", "inline", "ci.yml")
    engine.pipeline("inline-bad", "inline", "bad.yml")
    engine.run("inline-ci")
    spec = engine.claim()
    assert spec is not None
    repositories = spec["repositories"]
    assert isinstance(repositories, dict)
    assert repositories["git://Platform/Inline-Tools@master"]["commit"] == head
    bad = engine.run("inline-bad")
    assert _run_row(engine, bad).errors == [
        "bad.yml:4:3: checkout: repository 'Platform/nowhere' is not hosted by this mlyard server (no repository "
        "'nowhere'; a name maps to the repository named by its last segment): push it first"
    ]


def test_completion_triggers_look_up_a_default_branch_again_only_once_it_moved(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each successful run looks at the default branch of every repository with a pipeline: a git lookup for each
    only when the branch may have moved since the last one (the ref's files changed), and a push is seen."""
    from mlyard.ci import completion

    engine.repo("models", {"train.yml": TRAIN})
    serving = engine.repo("serving", {"deploy.yml": DEPLOY})
    engine.pipeline("train", "models", "train.yml")
    engine.pipeline("deploy", "serving", "deploy.yml")
    looked_up: list[str] = []
    real = completion.sources
    counted = types.SimpleNamespace(  # the completion triggers' git lookups (run creation's are not counted)
        bare_repo=real.bare_repo, load_at=real.load_at,
        resolve_commit=lambda platform, repo, rev: looked_up.append(repo) or real.resolve_commit(platform, repo, rev),
    )  # fmt: skip
    monkeypatch.setattr(completion, "sources", counted)
    engine.run("train")
    engine.drive({})
    assert sorted(looked_up) == ["models", "serving"]
    looked_up.clear()
    engine.run("train")
    engine.drive({})
    assert looked_up == []  # nothing moved
    assert len(_deploy_runs(engine)) == 2

    changed = DEPLOY.replace("echo deploying", "echo deploying again")
    moved = engine.git.commit({"deploy.yml": changed}, "v2", cwd=serving)
    engine.push("serving", serving, "master")
    engine.run("train")
    engine.drive({})
    assert looked_up == ["serving"]
    assert _deploy_runs(engine)[-1].source_version == moved  # the new head, not the remembered one
