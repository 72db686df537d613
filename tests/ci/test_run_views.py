"""The services build the typed views of mlyard.views from the database rows (issue 10, point 7): the
API sends their `to_dict()`, the web pages use them as they are. In-process on a real database and repos."""

from __future__ import annotations

from mlyard.protocol import State
from mlyard.services import pipelines, repos, runs
from mlyard.views import PipelineView, RepoView, RunBrief, RunSummary, RunView
from tests.ci.engine import ADMIN, Engine

PIPELINE = "trigger: none\nstages:\n- stage: build\n  jobs:\n  - job: compile\n    steps:\n    - script: echo hi\n"
BRIEF = ["id", "number", "build_number", "state", "reason", "source_branch", "source_version", "queued_at",
         "finished_at", "errors"]  # fmt: skip


def test_the_services_return_views_and_their_documents_keep_the_wire_order(engine: Engine) -> None:
    engine.repo("typed", {"ci.yml": PIPELINE})
    engine.pipeline("typed-ci", "typed", "ci.yml")
    queued = runs.queue_manual(engine.platform, ADMIN, "typed-ci", variables={"V": "1"})
    assert isinstance(queued, RunBrief) and queued.state is State.QUEUED and queued.number == 1
    assert list(queued.to_dict()) == BRIEF

    (listed,) = runs.list_runs(engine.platform, pipeline="typed-ci")
    assert isinstance(listed, RunSummary) and listed.id == queued.id
    assert list(listed.to_dict()) == [*BRIEF, "pipeline", "message"]

    engine.settle()  # compiled: the run has its tree of stages, jobs and steps
    shown = runs.show_run(engine.platform, queued.id)
    assert isinstance(shown, RunView) and shown.pipeline == "typed-ci"
    assert [s.name for s in shown.stages] == ["build"] and [j.name for j in shown.jobs] == ["compile"]
    assert isinstance(shown.jobs[0].state, State) and shown.jobs[0].steps
    doc = shown.to_dict()
    assert list(doc)[len(BRIEF):] == ["pipeline", "message", "requested_for", "parameters", "tags", "waiting_for",
                                      "started_at", "duration_seconds", "url", "web_url", "artifacts", "tests",
                                      "stages", "coverage"]  # fmt: skip
    assert RunView.from_dict(doc) == shown and doc["state"] == str(shown.state)
    assert list(doc["stages"][0]) == ["name", "display_name", "state", "started_at", "finished_at",
                                      "duration_seconds", "message", "jobs"]  # fmt: skip

    pipeline = pipelines.show_pipeline(engine.platform, "typed-ci")
    assert isinstance(pipeline, PipelineView) and pipeline.last_run is not None
    assert pipeline.last_run.id == queued.id and [r.id for r in pipeline.recent_runs or []] == [queued.id]
    assert "recent_runs" not in pipelines.list_pipelines(engine.platform)[0].to_dict()  # only `show` has them
    repo = repos.show_repo(engine.platform, "typed")
    assert isinstance(repo, RepoView) and repo.default_branch == "master" and repo.tags == []
