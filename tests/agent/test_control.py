"""Conditions, continueOnError, disabled steps, retries, timeouts and cancel (no orphan processes).

Sources: "Conditions" (step conditions and Agent.JobStatus), "Task types & usage" (continueOnError,
enabled, retryCountOnTaskFailure, timeoutInMinutes), "Jobs" (timeoutInMinutes, cancelTimeoutInMinutes).
"""

from __future__ import annotations

import time
import uuid

from mlyard.protocol import CANCELED, FAILED, SKIPPED, SUCCEEDED, SUCCEEDED_WITH_ISSUES
from mlyard.sandbox import Sandbox
from tests.agent.conftest import Recorder, Runner, job, processes_with, script


def test_steps_after_a_failure_skip_unless_their_condition_allows(run: Runner) -> None:
    spec = job(
        script("ok", "true"),
        script("boom", "exit 1"),
        script("next", "echo should not run"),
        script("always", 'echo "status=$AGENT_JOBSTATUS"', condition="always()"),
        script("onfail", "echo cleanup", condition="failed()"),
        script("onsuccess", "true", condition="succeeded()"),
        script("either", "true", condition="succeededOrFailed()"),
        script("var", "true", condition="eq(variables['Agent.JobStatus'], 'Failed')"),
    )
    outcome, rec = run(spec)
    results = {name: rec.result(name) for name in rec.results}
    assert results == {"ok": SUCCEEDED, "boom": FAILED, "next": SKIPPED, "always": SUCCEEDED, "onfail": SUCCEEDED,
                       "onsuccess": SKIPPED, "either": SUCCEEDED, "var": SUCCEEDED}  # fmt: skip
    assert ("started", "next") not in rec.events  # a skipped step is only reported finished
    assert "status=Failed" in rec.logs["always"]
    assert outcome.result == FAILED


def test_continue_on_error_makes_the_job_partially_succeed(run: Runner) -> None:
    spec = job(script("soft", "exit 1", continue_on_error=True), script("after", "true"))
    outcome, rec = run(spec)
    assert rec.result("soft") == SUCCEEDED_WITH_ISSUES
    assert rec.result("after") == SUCCEEDED
    assert outcome.result == SUCCEEDED_WITH_ISSUES


def test_disabled_step_is_skipped(run: Runner) -> None:
    outcome, rec = run(job(script("off", "exit 1", enabled=False), script("on", "true")))
    assert rec.result("off") == SKIPPED
    assert outcome.result == SUCCEEDED


def test_condition_on_variables_and_a_bad_condition(run: Runner) -> None:
    spec = job(
        script("when", "true", condition="eq(variables['deploy'], 'yes')"),
        script("unless", "true", condition="ne(variables.deploy, 'yes')"),
        script("bad", "true", condition="succeeded('Other')"),
        variables={"deploy": "yes"},
    )
    _, rec = run(spec)
    assert rec.result("when") == SUCCEEDED and rec.result("unless") == SKIPPED
    assert rec.result("bad") == FAILED
    ((_kind, message),) = rec.issues("bad")
    assert message.startswith("the condition 'succeeded('Other')' could not be evaluated: ")


def test_retry_count_on_task_failure(run: Runner) -> None:
    text = "n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; echo attempt $n; [ $n -ge 3 ]"
    spec = job(script("flaky", text, retry_count_on_task_failure=2), script("never", "false",
               retry_count_on_task_failure=1))  # fmt: skip
    _, rec = run(spec)
    assert rec.result("flaky") == SUCCEEDED
    assert [line for line in rec.logs["flaky"] if line.startswith(("attempt", "Retrying"))] == [
        "attempt 1", "Retrying 'flaky': attempt 2 of 3", "attempt 2", "Retrying 'flaky': attempt 3 of 3", "attempt 3",
    ]  # fmt: skip
    assert rec.result("never") == FAILED
    assert rec.logs["never"].count("Retrying 'never': attempt 2 of 2") == 1


def _marker() -> dict[str, str]:
    return {"ORPHAN_MARK": uuid.uuid4().hex}


def test_step_timeout_kills_the_process_group(run: Runner) -> None:
    env = _marker()
    spec = job(
        script("slow", "sleep 300 &\nsleep 300 &\necho started\nsleep 300", timeout_in_minutes=1, env=env),
        script("after", "true"),
        script("cleanup", "echo cleaning", condition="always()"),
    )
    begin = time.monotonic()
    outcome, rec = run(spec, minute=0.5)
    assert time.monotonic() - begin < 20
    assert rec.result("slow") == FAILED
    assert rec.issues("slow") == [("error", "the step timed out after 1 minutes")]
    assert rec.result("after") == SKIPPED and rec.result("cleanup") == SUCCEEDED
    assert outcome.result == FAILED
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []


def test_job_timeout_fails_the_job(run: Runner) -> None:
    env = _marker()
    spec = job(
        script("slow", "sleep 300 & sleep 300", env=env),
        script("after", "true"),
        script("cleanup", "echo cleaning", condition="always()"),
        timeout_in_minutes=1,
    )
    outcome, rec = run(spec, minute=0.5)
    assert outcome.result == FAILED
    assert outcome.message == "the job ran longer than the maximum time of 1 minutes"
    assert rec.issues("slow") == [("error", "the job ran longer than the maximum time of 1 minutes")]
    assert rec.result("after") == SKIPPED and rec.result("cleanup") == SUCCEEDED
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []


def _cancel_once_started(recorder: Recorder) -> bool:
    return "started" in recorder.logs.get("slow", [])


def test_cancel_kills_the_step_and_only_always_steps_run(run: Runner) -> None:
    env = _marker()
    spec = job(
        script("slow", "sleep 300 &\n(sleep 300; echo x) &\necho started\nsleep 300", env=env),
        script("after", "true"),
        script("onfail", "true", condition="failed()"),
        script("cleanup", 'echo "cleaning $AGENT_JOBSTATUS"', condition="always()"),
        script("oncancel", "true", condition="canceled()"),
    )
    recorder = run.recorder(cancel_when=_cancel_once_started)
    begin = time.monotonic()
    outcome, rec = run(spec, recorder)
    assert time.monotonic() - begin < 20
    assert rec.result("slow") == CANCELED
    assert {name: rec.result(name) for name in ("after", "onfail", "cleanup", "oncancel")} == {
        "after": SKIPPED, "onfail": SKIPPED, "cleanup": SUCCEEDED, "oncancel": SUCCEEDED,
    }  # fmt: skip
    assert "cleaning Canceled" in rec.logs["cleanup"]
    assert outcome.result == CANCELED
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []


def test_unsandboxed_background_processes_live_until_the_job_ends(run: Runner) -> None:
    env = _marker()
    spec = job(
        script("start", "(sleep 300) > /dev/null 2>&1 &\nsetsid sleep 301 &\necho started", env=env),
        script("check", "pgrep -f 'sleep 30[01]' > /dev/null && echo still-running"),
    )
    _, rec = run(spec, sandbox=Sandbox.none())
    assert "still-running" in rec.logs["check"]
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []


def test_sandboxed_background_processes_end_with_their_step(run: Runner) -> None:
    """Each step has its own PID namespace: what it leaves running ends with it, session or not."""
    env = _marker()
    spec = job(
        script("start", "(sleep 300) > /dev/null 2>&1 &\nsetsid sleep 301 &\necho started", env=env),
        script("check", "sleep 1.5; echo checked"),
    )
    left: list[int] = []  # marked processes seen while the second step runs (the agent polls for a cancel)

    def look(recorder: Recorder) -> bool:
        if ("started", "check") in recorder.events:
            left.append(len(processes_with("ORPHAN_MARK", env["ORPHAN_MARK"])))
        return False

    _, rec = run(spec, run.recorder(cancel_when=look))
    assert rec.result("start") == SUCCEEDED and "checked" in rec.logs["check"]
    assert left and set(left) == {0}
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []


def test_a_job_canceled_before_it_starts_skips_its_steps(run: Runner) -> None:
    recorder = run.recorder(cancel_when=lambda recorder: True)
    outcome, rec = run(job(script("a", "true"), script("b", "true", condition="always()")), recorder)
    assert rec.result("a") == SKIPPED and rec.result("b") == SUCCEEDED
    assert outcome.result == CANCELED


def test_always_steps_after_a_cancel_get_the_cancel_timeout(run: Runner) -> None:
    env = _marker()
    spec = job(
        script("slow", "echo started; sleep 300", env=env),
        script("cleanup", "sleep 300", condition="always()", env=env),
        script("late", "true", condition="always()"),
        cancel_timeout_in_minutes=1,
    )
    recorder = run.recorder(cancel_when=_cancel_once_started)
    outcome, rec = run(spec, recorder, minute=0.5)
    assert rec.result("cleanup") == CANCELED
    assert rec.issues("cleanup") == [("error", "the step was stopped: the job's cancel timeout of 1 minutes ran out")]
    assert rec.result("late") == SKIPPED
    assert outcome.result == CANCELED and outcome.message == "the job was canceled"
    assert processes_with("ORPHAN_MARK", env["ORPHAN_MARK"]) == []
