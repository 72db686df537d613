"""A valid task mlyard does not run (issue 11, "Tasks"): the run fails at that step, with the message
`mlyard pipelines validate` gave, and the steps before it ran."""

from __future__ import annotations

from mlyard.ci.plan_store import step_spec
from mlyard.pipelines import compile_pipeline, load_pipeline
from mlyard.protocol import FAILED, SKIPPED, SUCCEEDED, StepSpec
from tests.agent.conftest import Runner, job

PIPELINE = """\
steps:
- script: echo before > before.txt
- task: Docker@2
  inputs:
    command: build
- script: echo after
"""


def test_a_run_fails_at_an_unsupported_task_with_the_validation_message(run: Runner) -> None:
    plan = compile_pipeline(load_pipeline(PIPELINE, name="ci.yml"))
    (notice,) = plan.unsupported
    steps = [StepSpec.from_dict(step_spec(step, index)) for index, step in enumerate(plan.jobs[0].steps)]
    assert [step.unsupported for step in steps] == [None, notice.message, None]

    outcome, recorder = run(job(*steps))

    first, docker, last = (step.id for step in steps)
    assert outcome.result == FAILED
    assert outcome.message == f"step 'Docker' failed: {notice.message}"
    assert (recorder.result(first), recorder.result(docker), recorder.result(last)) == (SUCCEEDED, FAILED, SKIPPED)
    assert recorder.issues(docker) == [("error", notice.message)]
    assert f"##[error]{notice.message}" in recorder.text(docker)
