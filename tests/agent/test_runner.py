"""The runner's HTTP layer against a small real HTTP server in the test that speaks the agent API
(claim with the agent token; heartbeat, steps, logs, artifacts, tests and complete with the job token)."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlyard.agent.http_reporter import pack, unpack
from mlyard.agent.runner import run_agent
from mlyard.errors import OperationFailed
from tests.agent.conftest import job, script, step
from tests.agent.fake_server import AGENT_TOKEN, FakeServer


def _agent(url: str, work: Path) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    kwargs = {"name": "a1", "work_root": work, "stop_event": stop, "poll_seconds": 0.05, "claim_wait": 0}
    thread = threading.Thread(target=run_agent, args=(url, AGENT_TOKEN), kwargs=kwargs, daemon=True)
    thread.start()
    return stop, thread


def _wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_agent_claims_runs_and_reports_a_job(agent_api: tuple[FakeServer, str], tmp_path: Path) -> None:
    state, url = agent_api
    spec = job(
        script("build", "mkdir -p out && echo weights > out/w.txt\n"
                        'echo "##vso[task.setvariable variable=v;isOutput=true]1"'),
        step("pub", "PublishPipelineArtifact@1", inputs={"targetPath": "out", "artifact": "model"}),
        step("get", "DownloadPipelineArtifact@2", kind="download", inputs={"artifact": "model",
                                                                         "path": "$(Pipeline.Workspace)"}),
        script("show", "sleep 0.5; cat $(Pipeline.Workspace)/model/w.txt"),
        job_id=11, lease_seconds=1,
    )  # fmt: skip
    state.jobs.append(spec.to_dict())
    stop, thread = _agent(url, tmp_path / "work")
    _wait_for(lambda: 11 in state.completed)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert state.completed[11]["result"] == "succeeded"
    assert state.completed[11]["outputs"] == {"build.v": "1"}
    routes = [route for route, _, _ in state.calls]
    assert "heartbeat" in routes
    steps = [(sub, data["state"]) for route, sub, data in state.calls if route == "steps"]
    assert steps[:2] == [("build", "running"), ("build", "completed")]
    logs = [line for route, _, data in state.calls if route == "logs" for _, line in data["lines"]]
    assert "weights" in logs
    assert any(data["step_id"] is None for route, _, data in state.calls if route == "logs")


def test_cancel_from_the_heartbeat_and_a_lost_job(agent_api: tuple[FakeServer, str], tmp_path: Path) -> None:
    state, url = agent_api
    state.jobs.append(job(script("slow", "echo started; sleep 60"), job_id=21, lease_seconds=1).to_dict())
    state.jobs.append(job(script("slow", "echo started; sleep 60"), job_id=22, lease_seconds=1).to_dict())
    state.cancel.add(21)
    state.gone.add(22)
    stop, thread = _agent(url, tmp_path / "work")
    _wait_for(lambda: 21 in state.completed)
    assert state.completed[21]["result"] == "canceled"
    # job 22 is no longer the agent's (404): it is canceled locally, and its outcome is still offered
    _wait_for(lambda: (22, "complete") in state.seen)
    stop.set()
    thread.join(15)
    assert not thread.is_alive()


def test_a_job_whose_heartbeats_fail_past_the_lease_is_canceled(
    agent_api: tuple[FakeServer, str], tmp_path: Path
) -> None:
    state, url = agent_api
    state.jobs.append(job(script("slow", "echo started; sleep 60"), job_id=41, lease_seconds=1).to_dict())
    state.expired.add(41)
    stop, thread = _agent(url, tmp_path / "work")
    _wait_for(lambda: 41 in state.completed)
    stop.set()
    thread.join(10)
    assert state.completed[41]["result"] == "canceled"


def test_claim_errors_do_not_stop_the_loop(tmp_path: Path) -> None:
    stop, thread = _agent("http://127.0.0.1:9", tmp_path / "work")  # nothing listens on port 9
    time.sleep(0.5)
    assert thread.is_alive()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_pack_and_unpack_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("a")
    unpack(pack(source), tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "a"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt"])
def test_unpack_refuses_entries_outside_the_target(tmp_path: Path, name: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    target = tmp_path / "deep" / "target"
    if name.startswith("/"):
        unpack(buffer.getvalue(), target)  # the data filter strips the leading slash: stays inside
        assert (target / "abs" / "evil.txt").exists()
    else:
        with pytest.raises(OperationFailed, match="the artifact archive has an unsafe entry: "):
            unpack(buffer.getvalue(), target)
    assert not (tmp_path / "deep" / "evil.txt").exists()


def test_unpack_refuses_links_that_escape(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        archive.addfile(info)
    with pytest.raises(OperationFailed, match="the artifact archive has an unsafe entry: "):
        unpack(buffer.getvalue(), tmp_path / "target")
