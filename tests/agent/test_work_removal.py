"""A job's work directory is gone once its outcome is known (issue 15: it is renamed away at once and deleted
in the background, so the outcome is reported without waiting for the files); what a killed agent left is
deleted when its next job starts; and a background process a sandboxed step started is gone without the
agent scanning the machine's processes (the step's PID namespace ends with it)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest

from mlyard.agent import process, workspace
from mlyard.agent.state import StepGroup
from mlyard.protocol import SUCCEEDED
from mlyard.sandbox import Sandbox
from tests.agent.conftest import Runner, job, processes_with, script


def test_the_work_directory_is_renamed_away_at_once_and_deleted(run: Runner, tmp_path: Path) -> None:
    outcome, rec = run(job(script("s1", "echo data > $(Build.SourcesDirectory)/file.txt")))
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert not any((tmp_path / "work").glob("job*"))  # nothing under the job's name, even before deletion ends
    workspace.wait_for_removals()
    assert list((tmp_path / "work").iterdir()) == []


def test_leftovers_of_a_killed_agent_are_deleted_by_the_next_job(run: Runner, tmp_path: Path) -> None:
    leftover = tmp_path / "work" / ".removing-job1-abc"
    (leftover / "s").mkdir(parents=True)
    (leftover / "s" / "big.bin").write_bytes(b"x" * 1000)
    outcome, rec = run(job(script("s1", "true")))
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert not leftover.exists()


def test_a_background_process_of_a_sandboxed_step_ends_with_the_step(run: Runner) -> None:
    sandbox = Sandbox.detect()
    job_id = 100_000 + uuid.uuid4().int % 100_000  # processes of this job only (other tests run meanwhile)
    spec = job(script("s1", "setsid sleep 300 >/dev/null 2>&1 &\necho started"), job_id=job_id)
    outcome, rec = run(spec, sandbox=sandbox)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert sandbox.enabled and "started" in rec.all_text()
    # the kernel SIGKILLs what is left in the step's PID namespace as the step ends; a process may still be
    # seen on its way out for an instant (psutil: terminated), never running again
    for _ in range(100):
        left = [p for p in processes_with("MLYARD_JOB", str(job_id)) if _running(p)]
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def test_the_clean_up_of_a_sandboxed_job_waits_for_its_namespaces_without_scanning_processes(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: the clean-up used to scan every process of the machine for each step's group (10-16 ms a job);
    it now reads each step's namespace init (bwrap's child-pid) and returns once the kernel has emptied it."""
    scans: list[int] = []
    real = process._group_members
    monkeypatch.setattr(process, "_group_members", lambda pgid: scans.append(pgid) or real(pgid))
    sandbox = Sandbox.detect()
    job_id = 100_000 + uuid.uuid4().int % 100_000
    spec = job(
        script("s1", "true"),
        script("s2", "sleep 300 &\nsetsid sleep 301 >/dev/null 2>&1 &\ntrap '' TERM\necho started"),
        job_id=job_id,
    )
    outcome, rec = run(spec, sandbox=sandbox)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert sandbox.enabled and "started" in rec.all_text()
    assert [p for p in processes_with("MLYARD_JOB", str(job_id)) if _running(p)] == []  # at once: no wait
    assert scans == []


def test_a_namespace_is_ended_when_its_init_is_gone_a_zombie_or_another_groups_process() -> None:
    me = os.getpid()
    assert process.namespace_ended(StepGroup(os.getpgid(me), namespace_init=me)) is False  # alive, in the group
    assert process.namespace_ended(StepGroup(os.getpgid(me) + 1, namespace_init=me)) is True  # pid reused
    zombie = subprocess.Popen(["true"], start_new_session=True)
    for _ in range(200):  # until it has exited (not reaped: a zombie)
        if psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.01)
    assert process.namespace_ended(StepGroup(zombie.pid, namespace_init=zombie.pid)) is True
    zombie.wait()
    assert process.namespace_ended(StepGroup(zombie.pid, namespace_init=zombie.pid)) is True  # gone
    assert process.namespace_ended(StepGroup(zombie.pid)) is False  # unknown: the clean-up looks at the group
