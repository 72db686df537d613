"""Scheduling rules, table-driven, in process (issue 10, point 7): real repos, the real hook and ingest,
the real orchestrator and job queue on SQLite; jobs are claimed and completed through the service
functions the agent API calls, with the outcomes each row chooses (no agent, no HTTP server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlyard.ci.orchestrator import Orchestrator
from mlyard.db.engine import transaction
from mlyard.db.tables import Run
from mlyard.errors import Conflict
from mlyard.pipelines import Plan, predefined
from mlyard.protocol import JobOutcome
from mlyard.services import jobs, pipelines, resources, run_logs, runs
from tests.ci.engine import ADMIN, Engine
from tests.ci.legacy_plan import plan_doc

DATA = Path(__file__).resolve().parents[1] / "data" / "ci"


@dataclass(frozen=True)
class Row:
    """A pipeline, the results its jobs report, and what the scheduler must make of them."""

    id: str
    yaml: str
    jobs: dict[str, str]  # the state of every job at the end
    run: str  # the run's final state
    results: dict[str, str] = field(default_factory=dict)  # reported results (default succeeded)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # output variables a job reports
    stages: dict[str, str] = field(default_factory=dict)  # the state of these stages at the end
    first: tuple[str, ...] = ()  # the jobs claimed first, in this order
    last: tuple[str, ...] = ()  # the jobs claimed last, in this order
    variables: dict[str, dict[str, str]] = field(default_factory=dict)  # variables in a claimed job's spec


def jobs_yaml(*jobs: str) -> str:
    return "trigger: none\njobs:\n" + "".join(jobs)


def job(name: str, *lines: str) -> str:
    body = "".join(f"  {line}\n" for line in lines)
    return f"- job: {name}\n{body}  steps:\n  - script: echo {name}\n"


ROWS = [
    Row(
        "fan-out-fan-in",
        jobs_yaml(
            job("A"),
            job("B", "dependsOn: A"),
            job("C", "dependsOn: A"),
            job("D", "dependsOn: [B, C]"),
        ),
        jobs={"A": "succeeded", "B": "succeeded", "C": "succeeded", "D": "succeeded"},
        run="succeeded",
        first=("A",),
        last=("D",),
    ),
    Row(
        "a-failed-dependency-skips-its-dependents",
        jobs_yaml(job("A"), job("B", "dependsOn: A"), job("C", "dependsOn: B"), job("Free")),
        results={"A": "failed"},
        jobs={"A": "failed", "B": "skipped", "C": "skipped", "Free": "succeeded"},
        run="failed",
    ),
    Row(
        "failed-runs-after-a-failure-only",
        jobs_yaml(
            job("A"),
            job("Cleanup", "dependsOn: A", "condition: failed()"),
            job("Never", "dependsOn: A"),
        ),
        results={"A": "failed"},
        jobs={"A": "failed", "Cleanup": "succeeded", "Never": "skipped"},
        run="failed",
    ),
    Row(
        "failed-is-skipped-when-nothing-failed",
        jobs_yaml(job("A"), job("OnFailure", "dependsOn: A", "condition: failed()")),
        jobs={"A": "succeeded", "OnFailure": "skipped"},
        run="succeeded",
    ),
    Row(
        "always-runs-after-a-failure",
        jobs_yaml(job("A"), job("Always", "dependsOn: A", "condition: always()")),
        results={"A": "failed"},
        jobs={"A": "failed", "Always": "succeeded"},
        run="failed",
    ),
    Row(
        "succeeded-or-failed-runs-after-both",
        jobs_yaml(job("A"), job("B"), job("Report", "dependsOn: [A, B]", "condition: succeededOrFailed()")),
        results={"B": "failed"},
        jobs={"A": "succeeded", "B": "failed", "Report": "succeeded"},
        run="failed",
    ),
    Row(  # Azure: a custom condition replaces succeeded(); it does not add to it
        "a-custom-condition-replaces-succeeded",
        "trigger: none\nvariables:\n  deploy: 'yes'\njobs:\n"
        + job("A")
        + job("Deploy", "dependsOn: A", "condition: eq(variables['deploy'], 'yes')")
        + job("NotDeployed", "dependsOn: A", "condition: eq(variables['deploy'], 'no')"),
        results={"A": "failed"},
        jobs={"A": "failed", "Deploy": "succeeded", "NotDeployed": "skipped"},
        run="failed",
    ),
    Row(
        "a-condition-on-a-dependency-output",
        jobs_yaml(
            job("A"),
            job("Match", "dependsOn: A", "condition: and(succeeded(), eq(dependencies.A.outputs['ver.v'], '1'))"),
            job("Other", "dependsOn: A", "condition: and(succeeded(), eq(dependencies.A.outputs['ver.v'], '2'))"),
            job("Uses", "dependsOn: A", "variables:", "  version: $[ dependencies.A.outputs['ver.v'] ]"),
        ),
        outputs={"A": {"ver.v": "1"}},
        jobs={"A": "succeeded", "Match": "succeeded", "Other": "skipped", "Uses": "succeeded"},
        run="succeeded",
        variables={"Uses": {"version": "1"}},
    ),
    Row(
        "a-skipped-dependency-skips-its-dependents",
        jobs_yaml(job("A", "condition: eq(1, 2)"), job("B", "dependsOn: A"), job("C", "dependsOn: B")),
        jobs={"A": "skipped", "B": "skipped", "C": "skipped"},
        run="succeeded",
    ),
    Row(
        "a-skipped-dependency-and-always",
        jobs_yaml(job("A", "condition: eq(1, 2)"), job("B", "dependsOn: A", "condition: always()")),
        jobs={"A": "skipped", "B": "succeeded"},
        run="succeeded",
    ),
    Row(
        "continue-on-error-counts-as-succeeded-with-issues",
        jobs_yaml(job("Flaky", "continueOnError: true"), job("Solid")),
        results={"Flaky": "failed"},
        jobs={"Flaky": "failed", "Solid": "succeeded"},
        stages={"__default": "succeededWithIssues"},
        run="succeededWithIssues",
    ),
    Row(
        "stages-depend-fail-and-always",
        """trigger: none
stages:
- stage: Build
  jobs:
  - job: Left
    steps: [{script: echo}]
  - job: Right
    steps: [{script: echo}]
- stage: Broken
  dependsOn: Build
  jobs:
  - job: Fails
    steps: [{script: echo}]
- stage: Later
  dependsOn: Broken
  jobs:
  - job: NeverRuns
    steps: [{script: echo}]
- stage: Report
  dependsOn: [Build, Broken]
  condition: always()
  jobs:
  - job: Summary
    variables:
      fromStage: $[ stageDependencies.Build.Left.outputs['ver.version'] ]
    steps: [{script: echo}]
""",
        results={"Fails": "failed"},
        outputs={"Left": {"ver.version": "1.2.3"}},
        jobs={
            "Left": "succeeded",
            "Right": "succeeded",
            "Fails": "failed",
            "NeverRuns": "skipped",
            "Summary": "succeeded",
        },
        stages={"Build": "succeeded", "Broken": "failed", "Later": "skipped", "Report": "succeeded"},
        run="failed",
        last=("Summary",),
        variables={"Summary": {"fromStage": "1.2.3"}},
    ),
    Row(
        "a-stage-condition-on-stage-outputs",
        """trigger: none
stages:
- stage: Check
  jobs:
  - job: Probe
    steps: [{script: echo}]
- stage: Ship
  dependsOn: Check
  condition: eq(dependencies.Check.outputs['Probe.p.ok'], 'true')
  jobs:
  - job: Go
    steps: [{script: echo}]
- stage: Hold
  dependsOn: Check
  condition: eq(dependencies.Check.outputs['Probe.p.ok'], 'false')
  jobs:
  - job: Wait
    steps: [{script: echo}]
""",
        outputs={"Probe": {"p.ok": "true"}},
        jobs={"Probe": "succeeded", "Go": "succeeded", "Wait": "skipped"},
        stages={"Check": "succeeded", "Ship": "succeeded", "Hold": "skipped"},
        run="succeeded",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_scheduling_rule(engine: Engine, row: Row) -> None:
    engine.repo("rules", {"ci.yml": row.yaml})
    engine.pipeline("rules-ci", "rules", "ci.yml")
    run_id = engine.run("rules-ci")
    claimed = engine.drive(row.results, row.outputs)
    assert engine.job_states(run_id) == row.jobs
    assert engine.run_state(run_id) == row.run
    stages = engine.stage_states(run_id)
    assert {name: stages[name] for name in row.stages} == row.stages
    names = [str(spec["name"]) for spec in claimed]
    assert tuple(names[: len(row.first)]) == row.first, names
    assert tuple(names[len(names) - len(row.last) :]) == row.last, names
    specs = {str(spec["name"]): spec for spec in claimed}
    for name, expected in row.variables.items():
        variables = specs[name]["variables"]
        assert isinstance(variables, dict)
        assert {key: variables.get(key) for key in expected} == expected


def test_jobs_whose_dependencies_are_final_are_claimable_together(engine: Engine) -> None:
    engine.repo("par", {"ci.yml": jobs_yaml(job("A"), job("B", "dependsOn: A"), job("C", "dependsOn: A"))})
    engine.pipeline("par-ci", "par", "ci.yml")
    engine.run("par-ci")
    first = engine.claim()
    assert first is not None and first["name"] == "A" and engine.claim() is None
    engine.complete(int(str(first["job_id"])), "succeeded")
    engine.settle()
    both = [engine.claim(), engine.claim()]  # two agents at once: fan-out runs in parallel
    assert sorted(str(spec["name"]) for spec in both if spec) == ["B", "C"]
    assert engine.claim() is None


BATCHED = "trigger:\n  batch: true\n  branches:\n    include: [master]\nsteps:\n- script: echo build\n"


def test_batch_folds_the_pushes_made_during_a_run_into_one_run_of_the_newest_commit(engine: Engine) -> None:
    work = engine.repo("batched", {"ci.yml": BATCHED, "a.txt": "0"})
    engine.pipeline("batched-ci", "batched", "ci.yml")
    engine.git.commit({"a.txt": "1"}, "one", cwd=work)
    engine.push("batched", work, "master")
    engine.settle()
    first = engine.claim()
    assert first is not None
    for text in ("2", "3"):
        engine.git.commit({"a.txt": text}, f"change {text}", cwd=work)
        engine.push("batched", work, "master")
        engine.settle()
    newest = engine.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    listed = runs.list_runs(engine.platform, pipeline="batched-ci")
    assert len(listed) == 2, listed
    batched = listed[0]
    assert (batched.reason, batched.state, batched.source_version) == ("BatchedCI", "notStarted", newest)
    assert engine.claim() is None  # one run at a time on the branch
    engine.complete(int(str(first["job_id"])), "succeeded")
    engine.settle()
    second = engine.claim()
    assert second is not None and second["run_id"] == batched.id
    variables = second["variables"]
    assert isinstance(variables, dict)
    assert (variables["Build.SourceVersion"], variables["Build.Reason"]) == (newest, "BatchedCI")


DEPLOY = """trigger: none
stages:
- stage: Build
  jobs:
  - job: Build
    steps: [{script: echo}]
- stage: Deploy
  jobs:
  - deployment: Ship
    environment: test
    strategy:
      runOnce:
        deploy:
          steps: [{script: echo}]
"""


def _deploy_run(engine: Engine) -> int:
    from mlyard.services import environments

    environments.create_environment(engine.platform, ADMIN, "test")
    resources.set_environment(engine.platform, ADMIN, "test", approval_required=True)
    engine.repo("dep", {"ci.yml": DEPLOY})
    engine.pipeline("dep-ci", "dep", "ci.yml")
    run_id = engine.run("dep-ci")
    assert engine.run_state(run_id) == "waiting"  # for permission to use the environment
    runs.permit_run(engine.platform, ADMIN, run_id)
    engine.settle()
    assert [spec["name"] for spec in engine.drive({})] == ["Build"]
    return run_id


@pytest.mark.parametrize(
    ("decision", "ship", "run", "claims"),
    [
        ("approve", "succeeded", "succeeded", ["Ship"]),
        ("reject", "failed", "failed", []),
        ("cancel", "canceled", "canceled", []),
    ],
)
def test_a_deployment_waits_for_approval(engine: Engine, decision: str, ship: str, run: str, claims: list[str]) -> None:
    run_id = _deploy_run(engine)
    assert engine.job_states(run_id) == {"Build": "succeeded", "Ship": "waiting"}
    assert engine.run_state(run_id) == "running"
    if decision == "cancel":
        runs.cancel_run(engine.platform, ADMIN, run_id)
    else:
        runs.decide_approval(engine.platform, ADMIN, run_id, approve=decision == "approve")
    engine.settle()
    assert [str(spec["name"]) for spec in engine.drive({})] == claims
    assert engine.job_states(run_id) == {"Build": "succeeded", "Ship": ship}
    assert engine.run_state(run_id) == run
    again = engine.run("dep-ci")  # the permission is remembered; the approval is asked again
    assert runs.show_run(engine.platform, again).waiting_for == []
    assert [spec["name"] for spec in engine.drive({})] == ["Build"]
    assert engine.job_states(again) == {"Build": "succeeded", "Ship": "waiting"}


SECRET = "s3cr3t-Value-42"


def _claimed_with_a_secret(engine: Engine) -> dict[str, object]:
    engine.repo("lease", {"ci.yml": jobs_yaml(job("Holds"), job("After", "dependsOn: Holds"))})
    engine.pipeline("lease-ci", "lease", "ci.yml")
    pipelines.set_variable(engine.platform, ADMIN, "lease-ci", "TOKEN", SECRET, secret=True)
    engine.run("lease-ci")
    spec = engine.claim()
    assert spec is not None and spec["secrets"] == {"TOKEN": SECRET}
    assert engine.orchestrator.queue.held_secrets() == {spec["job_id"]}
    return spec


def test_an_expired_lease_fails_the_job_as_lost_and_drops_its_secrets(engine: Engine) -> None:
    spec = _claimed_with_a_secret(engine)
    job_id = int(str(spec["job_id"]))
    queue = engine.orchestrator.queue
    assert queue.expire_leases() == []  # within its lease: still the agent's
    later = datetime.now(UTC) + timedelta(seconds=queue.lease_seconds + 1)
    assert queue.expire_leases(now=later) == [job_id]
    assert queue.held_secrets() == set()
    with pytest.raises(Conflict):  # the agent that comes back cannot revive or complete it
        jobs.complete(engine.platform, engine.orchestrator, job_id, JobOutcome(result="succeeded"))
    engine.settle()
    assert engine.job_states(int(str(spec["run_id"]))) == {"Holds": "failed", "After": "skipped"}
    assert engine.run_state(int(str(spec["run_id"]))) == "failed"
    shown = runs.show_run(engine.platform, int(str(spec["run_id"])))
    message = next(j.message for s in shown.stages for j in s.jobs if j.name == "Holds")
    assert message.startswith("agent lost")


def test_a_completed_job_drops_its_secrets(engine: Engine) -> None:
    spec = _claimed_with_a_secret(engine)
    engine.complete(int(str(spec["job_id"])), "succeeded", {"s.v": f"leaked {SECRET}"})
    assert engine.orchestrator.queue.held_secrets() == set()
    engine.settle()
    shown = runs.show_run(engine.platform, int(str(spec["run_id"])))
    outputs = next(j.outputs for s in shown.stages for j in s.jobs if j.name == "Holds")
    assert SECRET not in str(outputs)


def test_a_server_restart_fails_the_jobs_of_its_own_agents_and_drops_their_secrets(engine: Engine) -> None:
    engine.repo("restart", {"ci.yml": jobs_yaml(job("Local"))})
    engine.pipeline("restart-ci", "restart", "ci.yml")
    pipelines.set_variable(engine.platform, ADMIN, "restart-ci", "TOKEN", SECRET, secret=True)
    engine.run("restart-ci")
    spec = jobs.claim(engine.platform, engine.orchestrator, "local-1", local=True)
    assert spec is not None and engine.orchestrator.queue.held_secrets() == {spec["job_id"]}
    assert engine.orchestrator.recover_after_restart() == 1
    assert engine.orchestrator.queue.held_secrets() == set()
    engine.settle()
    assert engine.run_state(int(str(spec["run_id"]))) == "failed"


def test_push_triggers_by_path_branch_and_skip_marker(engine: Engine) -> None:
    triggered = (DATA / "triggered.yml").read_text()
    work = engine.repo("trig", {"ci.yml": triggered, "src/app.py": "1\n", "README.md": "r"})
    engine.pipeline("trig-ci", "trig", "ci.yml")
    engine.git.commit({"src/app.py": "2\n"}, "change src", cwd=work)
    engine.push("trig", work, "master")
    engine.settle()
    spec = engine.claim()
    assert spec is not None and isinstance(variables := spec["variables"], dict)
    assert (variables["Build.Reason"], variables["Build.SourceBranchName"]) == ("IndividualCI", "master")
    engine.complete(int(str(spec["job_id"])), "succeeded")

    engine.git.commit({"README.md": "docs only"}, "docs", cwd=work)  # outside the paths
    engine.push("trig", work, "master")
    engine.git.commit({"src/app.py": "3\n"}, "skip me [skip ci]", cwd=work)
    engine.push("trig", work, "master")
    engine.git("checkout", "-q", "-b", "experimental/x", cwd=work)  # an excluded branch
    engine.git.commit({"src/app.py": "4\n"}, "experiment", cwd=work)
    engine.push("trig", work, "experimental/x")
    engine.git("checkout", "-q", "-b", "feature/y", cwd=work)
    engine.git.commit({"src/app.py": "5\n"}, "feature", cwd=work)
    engine.push("trig", work, "feature/y")
    engine.settle()
    listed = runs.list_runs(engine.platform, pipeline="trig-ci")
    assert [r.source_branch for r in listed] == ["refs/heads/feature/y", "refs/heads/master"]


def test_the_plan_is_stored_as_plan_to_dict_and_a_run_stored_in_the_old_form_still_runs(engine: Engine) -> None:
    engine.repo("stored", {"ci.yml": jobs_yaml(job("A"), job("B", "dependsOn: A"))})
    engine.pipeline("stored-ci", "stored", "ci.yml")
    for legacy in (False, True):
        run_id = engine.run("stored-ci")
        with transaction(engine.platform.sessions) as session:
            stored = session.get(Run, run_id)
            assert stored is not None and stored.plan is not None
            plan = Plan.from_dict(stored.plan)
            assert stored.plan == plan.to_dict()
            if legacy:  # as the runs stored before this change hold it
                stored.plan = plan_doc(plan)
        claimed = engine.drive({})
        assert [spec["name"] for spec in claimed] == ["A", "B"]
        assert all(spec["steps"] for spec in claimed)
        assert engine.job_states(run_id) == {"A": "succeeded", "B": "succeeded"}


@pytest.mark.parametrize(
    ("ref", "name"),
    [("refs/heads/master", "master"), ("refs/heads/feature/x", "x"), ("refs/tags/v1.0", "v1.0"), ("main", "main")],
)
def test_source_branch_name(ref: str, name: str) -> None:
    facts = predefined.RunFacts(run_id=7, reason="Manual", source_branch=ref, source_version="abc")
    assert predefined.source_variables(facts)["Build.SourceBranchName"] == name
    assert predefined.run_variables(facts)["Build.SourceBranchName"] == name


def test_cancel_while_a_job_runs_tells_its_agent_and_cancels_what_has_not_started(engine: Engine) -> None:
    engine.repo("cancel", {"ci.yml": jobs_yaml(job("A"), job("B", "dependsOn: A"), job("C", "dependsOn: B"))})
    engine.pipeline("cancel-ci", "cancel", "ci.yml")
    run_id = engine.run("cancel-ci")
    spec = engine.claim()
    assert spec is not None and spec["name"] == "A"
    job_id = int(str(spec["job_id"]))
    assert jobs.heartbeat(engine.platform, job_id)["cancel"] is False
    runs.cancel_run(engine.platform, ADMIN, run_id)
    engine.settle()
    assert engine.run_state(run_id) == "running"  # until its agent has stopped the running job
    assert jobs.heartbeat(engine.platform, job_id)["cancel"] is True
    engine.complete(job_id, "canceled")
    engine.settle()
    assert engine.claim() is None
    assert engine.job_states(run_id) == {"A": "canceled", "B": "canceled", "C": "canceled"}
    assert engine.run_state(run_id) == "canceled"
    assert engine.orchestrator.queue.held_secrets() == set()


def test_a_job_claimed_before_a_restart_is_masked_and_its_secrets_held_only_while_it_runs(engine: Engine) -> None:
    spec = _claimed_with_a_secret(engine)
    job_id, run_id = int(str(spec["job_id"])), int(str(spec["run_id"]))
    job = jobs.authenticate_job(engine.platform, f"Bearer {spec['access_token']}", job_id)
    engine.orchestrator.stop()  # a new server process: its queue never saw the job's spec
    engine.orchestrator = Orchestrator(engine.platform)
    engine.platform.orchestrator = engine.orchestrator
    queue = engine.orchestrator.queue
    assert queue.held_secrets() == set()
    jobs.append_logs(engine.platform, job, None, [[0.0, f"before {SECRET}"]])
    assert queue.held_secrets() == {job_id}
    engine.complete(job_id, "succeeded")
    assert queue.held_secrets() == set()
    jobs.append_logs(engine.platform, job, None, [[0.0, f"late {SECRET}"]])  # a report racing the end
    assert queue.held_secrets() == set()
    text = run_logs.read_text(engine.platform, run_id)
    assert "before ***" in text and "late ***" in text and SECRET not in text
