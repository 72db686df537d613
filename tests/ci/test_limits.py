"""No stalls (issue 10, point 3): compilation is bounded and runs outside the scheduler lock; a repo
whose files cannot be read fails its run. Table-driven on the pure compiler, then in-process on the
orchestrator, where jobs are claimed and completed through the service functions agents call."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlyard.ci.orchestrator import Orchestrator
from mlyard.db.engine import transaction
from mlyard.db.tables import Environment, Pipeline
from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
from mlyard.pipelines.limits import MAX_COMPILE_SECONDS, MAX_EXPANDED_NODES, MAX_YAML_BYTES, Limits
from mlyard.protocol import JobOutcome
from mlyard.services import jobs, resources, runs
from mlyard.services.environments import add_environment
from mlyard.views import RunView
from tests.ci.engine import ADMIN, AGENT, Engine

DATA = Path(__file__).resolve().parents[1] / "data" / "ci"
BOMB = (DATA / "each-bomb.yml").read_text()
TRIVIAL = (DATA / "trivial.yml").read_text()
THREE_JOBS = "jobs:\n" + "".join(f"- job: j{i}\n  steps:\n  - script: echo {i}\n" for i in range(3))
THREE_STEPS = "steps:\n" + "".join(f"- script: echo {i}\n" for i in range(3))
COPIES = (
    "parameters:\n- name: big\n  default: " + "x" * 600 + "\nsteps:\n"
    "- script: echo ${{ parameters.big }}\n- script: echo ${{ parameters.big }}\n"
)


@pytest.mark.parametrize(
    ("text", "limits", "expected"),
    [
        (
            BOMB,
            # the default node limit; the time limit out of the race (on a loaded machine its 10 s came first)
            Limits(seconds=60 * MAX_COMPILE_SECONDS),
            f"ci.yml:9:9: steps[0][0][0][0]: the pipeline expands to more than {MAX_EXPANDED_NODES} nodes "
            "(limit: expanded nodes); reduce the ${{ each }} loops or template references",
        ),
        (BOMB, Limits(nodes=10**9, seconds=0), "(limit: compile time)"),
        (
            COPIES,
            Limits(text=1000),
            "ci.yml:6:3: steps[1].script: template expressions built more than 1000 characters of text "
            "(limit: expanded text); reduce the copies of large values",
        ),
        (THREE_JOBS, Limits(jobs=2), "ci.yml:1:1: the plan has 3 jobs, more than 2 (limit: jobs)"),
        (THREE_STEPS, Limits(steps=2), "ci.yml:1:1: the plan has 3 steps, more than 2 (limit: steps)"),
    ],
    ids=["each-bomb", "time", "text", "jobs", "steps"],
)
def test_compile_limits_name_the_limit_and_the_file(
    tmp_path: Path, text: str, limits: Limits, expected: str
) -> None:
    pipeline = load_pipeline(text, name="ci.yml")
    with pytest.raises(PipelineError) as raised:
        compile_pipeline(pipeline, repo_root=tmp_path, limits=limits)
    assert raised.value.errors is not None
    assert len(raised.value.errors) == 1 and expected in raised.value.errors[0]


REUSED = """\
parameters:
- name: items
  type: object
  default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
steps:
- ${{ each a in parameters.items }}:
  - ${{ each b in parameters.items }}:
    - template: t.yml
"""
TEMPLATE = "parameters:\n- name: big\n  default: " + "x" * 100 + "\nsteps:\n- script: echo ${{ parameters.big }}\n"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (Limits(nodes=500), "ci.yml:8:7: steps[0][0][0].template: the pipeline expands to more than 500 nodes"),
        (Limits(text=1000), "ci.yml:8:7: steps[0][0][0].template: template expressions built more than 1000"),
    ],
    ids=["nodes", "text"],
)
def test_a_template_included_again_counts_its_work_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: Limits, expected: str
) -> None:
    """An inclusion with the same values reuses the first expansion (docs/pipelines.md), and is counted again:
    100 inclusions of one small template are over both limits, though one expansion is far under them."""
    (tmp_path / "t.yml").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "ci.yml").write_text(REUSED, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError) as raised:
        compile_pipeline(load_pipeline(Path("ci.yml")), repo_root=tmp_path, limits=limits)
    assert raised.value.errors is not None
    assert len(raised.value.errors) == 1 and raised.value.errors[0].startswith(expected), raised.value.errors
    plan = compile_pipeline(load_pipeline(Path("ci.yml")), repo_root=tmp_path)  # and under the limits
    assert [step.inputs["script"] for step in plan.jobs[0].steps] == ["echo " + "x" * 100] * 100


def test_a_yaml_file_over_the_size_limit_is_not_parsed() -> None:
    text = "steps:\n- script: echo hi\n" + "# padding\n" * (MAX_YAML_BYTES // 10)
    with pytest.raises(PipelineError) as raised:
        load_pipeline(text, name="big.yml")
    assert raised.value.errors == [
        f"big.yml:1:1: the file is larger than {MAX_YAML_BYTES} bytes (limit: YAML file size); split it into templates"
    ]


def wait_run(engine: Engine, orchestrator: Orchestrator, run_id: int, wanted: set[str]) -> RunView:
    deadline = time.monotonic() + 120
    while True:
        orchestrator.tick()
        doc = runs.show_run(engine.platform, run_id)
        if doc.state in wanted or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def test_the_each_bomb_fails_and_does_not_hold_the_scheduler(engine: Engine) -> None:
    engine.repo("bombs", {"bomb.yml": BOMB, "trivial.yml": TRIVIAL})
    engine.pipeline("bomb", "bombs", "bomb.yml")
    engine.pipeline("trivial", "bombs", "trivial.yml")
    orchestrator = Orchestrator(engine.platform)
    try:
        bomb = runs.queue_manual(engine.platform, ADMIN, "bomb")
        orchestrator.tick()  # the bomb compiles in a compile thread from now on
        trivial = runs.queue_manual(engine.platform, ADMIN, "trivial")
        # No agent here: "running" means compiled and its job made claimable, while the bomb compiles.
        assert wait_run(engine, orchestrator, trivial.id, {"running"}).state == "running"
        spec = jobs.claim(engine.platform, orchestrator, AGENT)  # and it is claimed and completed meanwhile
        assert spec is not None and spec["run_id"] == trivial.id
        jobs.complete(engine.platform, orchestrator, int(str(spec["job_id"])), JobOutcome(result="succeeded"))
        assert wait_run(engine, orchestrator, trivial.id, {"succeeded"}).state == "succeeded"
        done = wait_run(engine, orchestrator, bomb.id, {"failed"})
    finally:
        orchestrator.stop()
    assert done.state == "failed"
    (error,) = done.errors
    assert error == (
        f"bomb.yml:9:9: steps[0][0][0][0]: the pipeline expands to more than {MAX_EXPANDED_NODES} nodes "
        "(limit: expanded nodes); reduce the ${{ each }} loops or template references"
    ) or (  # on a loaded machine the time limit may come first
        error.startswith("bomb.yml:")
        and error.endswith(
            f"compiling the pipeline took longer than {MAX_COMPILE_SECONDS:g} s "
            "(limit: compile time); simplify its templates and expressions"
        )
    )


def test_cancel_while_compiling(engine: Engine) -> None:
    engine.repo("cancels", {"bomb.yml": BOMB})
    engine.pipeline("cancel-bomb", "cancels", "bomb.yml")
    orchestrator = Orchestrator(engine.platform)
    try:
        queued = runs.queue_manual(engine.platform, ADMIN, "cancel-bomb")
        orchestrator.tick()
        runs.cancel_run(engine.platform, ADMIN, queued.id)
        orchestrator.tick()
        doc = runs.show_run(engine.platform, queued.id)
        assert doc.state == "canceled" and doc.message == "canceled before it started"
        deadline = time.monotonic() + 120
        while orchestrator.compiling() and time.monotonic() < deadline:  # its result is dropped
            time.sleep(0.05)
    finally:
        orchestrator.stop()
    assert runs.show_run(engine.platform, queued.id).state == "canceled"


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("/outside/the/repo", "'passwd' is a link to an absolute path"),
        ("../../../../outside/the/repo", "'passwd' is a link pointing outside the repository"),
    ],
    ids=["absolute", "outside"],
)
def test_a_symlink_out_of_the_repo_fails_the_run(engine: Engine, target: str, problem: str) -> None:
    work = engine.repo("links", {"ci.yml": TRIVIAL})
    engine.pipeline("links-ci", "links", "ci.yml")
    os.symlink(target, work / "passwd")
    engine.git("add", "passwd", cwd=work)
    engine.git("commit", "-q", "-m", "link", cwd=work)
    engine.push("links", work, "master")
    orchestrator = Orchestrator(engine.platform)
    try:
        queued = runs.queue_manual(engine.platform, ADMIN, "links-ci")
        doc = wait_run(engine, orchestrator, queued.id, {"failed"})
    finally:
        orchestrator.stop()
    assert doc.state == "failed"
    sha = str(doc.source_version)
    assert doc.message == (
        f"cannot compile the pipeline: cannot read the files of repository 'links' at {sha[:10]}: "
        f"{problem}; remove the link or make it point inside the repository"
    )


CONNECTION_YAML = (
    "trigger: none\nsteps:\n- task: AzureCLI@2\n  inputs:\n    azureSubscription: guarded\n"
    "    scriptType: bash\n    scriptLocation: inlineScript\n    inlineScript: echo hi\n"
)
APPROVAL_YAML = (
    "trigger: none\njobs:\n- deployment: Ship\n  environment: gated\n  strategy:\n    runOnce:\n"
    "      deploy:\n        steps:\n        - script: echo ship\n"
)


@pytest.mark.parametrize(
    ("yaml", "before_cancel"),
    [
        (TRIVIAL, set()),  # queued, not compiled yet
        (CONNECTION_YAML, {"waiting"}),  # waiting for permission to use a connection
        (APPROVAL_YAML, {"running"}),  # its deployment waits for approval
        (TRIVIAL, {"running"}),  # running, its job waiting for an agent
    ],
    ids=["queued", "waiting-for-permission", "waiting-for-approval", "running"],
)
def test_cancel_works_in_every_state(engine: Engine, yaml: str, before_cancel: set[str]) -> None:
    resources.create_connection(engine.platform, ADMIN, "guarded", settings={"x": "1"})
    with transaction(engine.platform.sessions) as session:
        add_environment(session, engine.platform.settings, "gated")
        env = session.query(Environment).filter_by(name="gated").one()
        env.approval_required = True
    engine.repo("cancel-states", {"ci.yml": yaml})
    engine.pipeline("cancel-states", "cancel-states", "ci.yml")
    with transaction(engine.platform.sessions) as session:
        pipeline_id = session.query(Pipeline).filter_by(name="cancel-states").one().id
        resources.grant(session, pipeline_id, "environment", "gated", actor="admin")
    orchestrator = Orchestrator(engine.platform)
    try:
        queued = runs.queue_manual(engine.platform, ADMIN, "cancel-states")
        if before_cancel:
            assert wait_run(engine, orchestrator, queued.id, before_cancel).state in before_cancel
        if yaml is APPROVAL_YAML:
            orchestrator.tick()
            job = runs.show_run(engine.platform, queued.id).jobs[0]
            assert job.approval == "pending", job
        runs.cancel_run(engine.platform, ADMIN, queued.id)
        done = wait_run(engine, orchestrator, queued.id, {"canceled"})
    finally:
        orchestrator.stop()
    assert done.state == "canceled"


def test_a_stopped_compilation_ends_early(tmp_path: Path) -> None:
    pipeline = load_pipeline(BOMB, name="ci.yml")
    with pytest.raises(PipelineError) as raised:
        compile_pipeline(pipeline, repo_root=tmp_path, stop=lambda: True)
    assert raised.value.errors == ["ci.yml:1:1: compilation stopped: the run was canceled"]
