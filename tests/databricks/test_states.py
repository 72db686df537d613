"""Workspace job states in Databricks' words (services.databricks.run_state), table-driven, in process."""

from __future__ import annotations

import pytest

from mlyard.services.databricks import RunState, run_state

CASES = [
    ({"state": "queued"}, RunState("PENDING", None, "Waiting to start", False, None, None)),
    ({"state": "running"}, RunState("RUNNING", None, "In run", False, None, None)),
    ({"state": "succeeded", "exit_code": 0}, RunState("TERMINATED", "SUCCESS", "", False, "SUCCESS", "SUCCESS")),
    (
        {"state": "failed", "exit_code": 1, "message": "the entry point exited with code 1"},
        RunState("TERMINATED", "FAILED", "the entry point exited with code 1", False, "RUN_EXECUTION_ERROR",
                 "CLIENT_ERROR"),
    ),
    (
        {"state": "failed", "message": "the entry point ran longer than the maximum of 60 minutes (X) and was stopped"},
        RunState("TERMINATED", "TIMEDOUT", "the entry point ran longer than the maximum of 60 minutes (X) and was "
                 "stopped", True, "CANCELED", "SUCCESS"),
    ),
    (
        {"state": "failed", "message": "the server stopped while the job was running"},
        RunState("INTERNAL_ERROR", "FAILED", "the server stopped while the job was running", False, "INTERNAL_ERROR",
                 "INTERNAL_ERROR"),
    ),
    (
        {"state": "canceled", "message": "canceled by ana"},
        RunState("TERMINATED", "CANCELED", "canceled by ana", True, "USER_CANCELED", "SUCCESS"),
    ),
]


@pytest.mark.parametrize(("job", "expected"), CASES)
def test_run_state(job: dict[str, object], expected: RunState) -> None:
    assert run_state(job) == expected
