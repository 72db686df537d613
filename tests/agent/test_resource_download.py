"""`download: alias` of a pipeline resource: the compiled step downloads from the run named by
`resources.pipeline.<alias>.runID` into $(Pipeline.Workspace)/<alias>/<artifact> ("resources.pipelines",
"steps.download")."""

from __future__ import annotations

from mlyard.ci.plan_store import step_spec
from mlyard.pipelines import compile_pipeline, load_pipeline
from mlyard.protocol import FAILED, SUCCEEDED, StepSpec
from tests.agent.conftest import Runner, job, script

PIPELINE = """resources:
  pipelines:
  - pipeline: training
    source: train
steps:
- download: training
  artifact: model
"""


def _download() -> StepSpec:
    (compiled,) = compile_pipeline(load_pipeline(PIPELINE, name="p.yml")).jobs[0].steps
    return StepSpec.from_dict(step_spec(compiled, 0))


def test_download_alias_reads_the_resource_run(run: Runner) -> None:
    recorder = run.recorder()
    (recorder.store / "run-17" / "model").mkdir(parents=True)
    (recorder.store / "run-17" / "model" / "weights.txt").write_text("trained\n")
    spec = job(_download(), script("show", "cat $(Pipeline.Workspace)/training/model/weights.txt"),
               variables={"resources.pipeline.training.runID": "17"})  # fmt: skip
    _, rec = run(spec, recorder)
    download_id = spec.steps[0].id
    assert rec.result(download_id) == SUCCEEDED, rec.text(download_id)
    assert "trained" in rec.logs["show"]


def test_download_alias_without_a_run_fails_clearly(run: Runner) -> None:
    spec = job(_download())
    _, rec = run(spec)
    download_id = spec.steps[0].id
    assert rec.result(download_id) == FAILED
    assert rec.issues(download_id) == [("error", "pipeline resource 'training' has no run to download from: its "
                                                 "source pipeline has no successful run yet")]  # fmt: skip
