"""No run lost: race-free run numbers and the trigger outbox (issue 10, point 2), and the failed run of
a push with broken pipeline YAML (point 6). In-process on a real database and real repos; the crash
tests run a real server and kill it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from mlyard.ci import triggers
from mlyard.db.engine import transaction
from mlyard.db.tables import Pipeline, PushEvent, Run
from mlyard.pipelines.limits import MAX_YAML_BYTES
from mlyard.services import runs
from tests.ci.engine import ADMIN, Engine

PIPELINE = "trigger:\n  branches:\n    include: ['*']\nsteps:\n- script: echo hi\n"
BROKEN = "trigger: [master]\nsteps:\n- script: echo hi\n  bogus: [\n"
INVALID = "trigger: [master]\nsteps:\n- script: echo hi\n  displayName: one\n  nope: 1\n"


def all_runs(engine: Engine) -> list[Run]:
    with transaction(engine.platform.sessions) as session:
        return list(session.scalars(select(Run).order_by(Run.id)))


def test_fifty_parallel_manual_runs_get_distinct_numbers(engine: Engine) -> None:
    engine.repo("manual", {"ci.yml": PIPELINE})
    engine.pipeline("manual-ci", "manual", "ci.yml")
    with ThreadPoolExecutor(max_workers=16) as pool:
        queued = list(pool.map(lambda _: runs.queue_manual(engine.platform, ADMIN, "manual-ci"), range(50)))
    assert sorted(r.number for r in queued) == list(range(1, 51))


def test_twenty_concurrent_pushes_get_one_run_each(engine: Engine) -> None:
    work = engine.repo("pushes", {"ci.yml": PIPELINE})
    engine.pipeline("pushes-ci", "pushes", "ci.yml")
    for index in range(20):
        engine.git("checkout", "-q", "-b", f"b{index}", "master", cwd=work)
        engine.git.commit({"f.txt": str(index)}, f"change {index}", cwd=work)
    with ThreadPoolExecutor(max_workers=20) as pool:
        pushed = list(pool.map(lambda i: engine.push("pushes", work, f"b{i}"), range(20)))
    assert all(len(events) == 1 for events in pushed)
    with ThreadPoolExecutor(max_workers=4) as pool:  # several triggerers at once: still one run per push
        batches = list(pool.map(lambda _: triggers.trigger_pending(engine.platform), range(4)))
    created = [run_id for ids in batches for run_id in ids]
    found = all_runs(engine)
    assert len(created) == len(found) == 20
    assert sorted(r.number for r in found) == list(range(1, 21))
    assert sorted(r.source_branch for r in found) == sorted(f"refs/heads/b{i}" for i in range(20))
    assert triggers.trigger_pending(engine.platform) == []


def test_an_event_is_triggered_once_and_marked(engine: Engine) -> None:
    work = engine.repo("once", {"ci.yml": PIPELINE})
    engine.pipeline("once-ci", "once", "ci.yml")
    engine.git.commit({"f.txt": "1"}, "one", cwd=work)
    (event,) = engine.push("once", work, "master")
    with transaction(engine.platform.sessions) as session:
        (pending,) = triggers.pending(session)
    assert pending.id == event["id"]
    first = triggers.trigger_event(engine.platform, pending)
    again = triggers.trigger_event(engine.platform, pending)  # a second triggerer, or a retry after a crash
    assert len(first) == 1 and again == []
    with transaction(engine.platform.sessions) as session:
        row = session.get(PushEvent, event["id"])
        assert row is not None and row.triggered_at is not None
        assert triggers.pending(session) == []
    assert [r.id for r in all_runs(engine)] == first


def test_a_pipeline_registered_after_a_push_is_not_triggered_by_it(engine: Engine) -> None:
    """Triggering lags behind a push on a busy server: the pipelines it triggers are those that existed when the
    push was recorded (a repo's first push, then its pipeline's registration, started a run for the old push)."""
    work = engine.repo("late", {"ci.yml": PIPELINE})
    engine.pipeline("late-early", "late", "ci.yml")
    engine.git.commit({"f.txt": "1"}, "one", cwd=work)
    engine.push("late", work, "master")
    engine.pipeline("late-ci", "late", "ci.yml")  # registered before the push is triggered
    created = triggers.trigger_pending(engine.platform)
    assert [r.id for r in all_runs(engine)] == created
    with transaction(engine.platform.sessions) as session:
        names = {p.id: p.name for p in session.scalars(select(Pipeline))}
    assert [names[r.pipeline_id] for r in all_runs(engine)] == ["late-early"]


def test_a_push_with_broken_yaml_creates_a_failed_run_with_the_errors(engine: Engine) -> None:
    work = engine.repo("broken", {"ci.yml": PIPELINE, "other.yml": PIPELINE})
    engine.pipeline("broken-ci", "broken", "ci.yml")
    engine.pipeline("broken-other", "broken", "other.yml")
    engine.git.commit({"ci.yml": BROKEN}, "break it", cwd=work)
    engine.push("broken", work, "master")
    created = triggers.trigger_pending(engine.platform)
    assert len(created) == 2  # the broken pipeline's failed run and the other pipeline's run
    failed, other = (runs.show_run(engine.platform, run_id) for run_id in created)
    assert other.state == "queued" and other.errors == []
    assert failed.state == "failed" and failed.reason == "IndividualCI"
    assert failed.errors and failed.errors[0].startswith("ci.yml:5:1: ")
    assert "invalid YAML" in failed.errors[0]
    assert failed.message.startswith("the pipeline is invalid:\nci.yml:5:1: ")
    listed = runs.list_runs(engine.platform, pipeline="broken-ci")
    assert listed[0].errors == failed.errors


def test_schema_errors_are_listed_with_their_positions(engine: Engine) -> None:
    work = engine.repo("schema", {"ci.yml": PIPELINE})
    engine.pipeline("schema-ci", "schema", "ci.yml")
    engine.git.commit({"ci.yml": INVALID}, "unknown key", cwd=work)
    engine.push("schema", work, "master")
    (run_id,) = triggers.trigger_pending(engine.platform)
    doc = runs.show_run(engine.platform, run_id)
    assert doc.state == "failed"
    assert [e.split(": ", 1)[0] for e in doc.errors] == ["ci.yml:5:3"]
    assert "nope" in doc.errors[0]


def test_a_push_of_a_yaml_over_the_size_limit_fails_fast(engine: Engine) -> None:
    work = engine.repo("huge", {"ci.yml": PIPELINE})
    engine.pipeline("huge-ci", "huge", "ci.yml")
    engine.git.commit({"ci.yml": PIPELINE + "# padding\n" * (MAX_YAML_BYTES // 10)}, "grow", cwd=work)
    engine.push("huge", work, "master")
    (run_id,) = triggers.trigger_pending(engine.platform)
    doc = runs.show_run(engine.platform, run_id)
    assert doc.state == "failed"
    assert doc.errors == [
        f"ci.yml:1:1: the file is larger than {MAX_YAML_BYTES} bytes (limit: YAML file size); split it into templates"
    ]
