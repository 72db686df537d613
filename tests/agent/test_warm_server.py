"""Warm step sandboxes of a real server's local agents (issue 15): Python steps of a pushed pipeline run
in them, each step in a sandbox of its own (nothing one step sets is seen by the next), and the server's
`GET /health` shows how many wait."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.ci.helpers import logs, wait_runs, wait_state
from tests.conftest import Git, Server, start_server

pytestmark = pytest.mark.slow
WARM = "import sys; print('warm' if 'decimal' in sys.modules else 'cold')"
PIPELINE = f"""trigger:
  branches:
    include: [master]
steps:
- script: echo "nothing to import here"
- script: |
    python -c "{WARM}"
    python -c "import decimal; decimal.LEFT_BY_STEP_ONE = 1"
- script: |
    python -c "{WARM}"
    python -c "import decimal; print('left over:', hasattr(decimal, 'LEFT_BY_STEP_ONE'))"
    python -c "import sys; sys.exit(3)" || echo "exit code $?"
  env:
    MLYARD_STEP_WARM_DEBUG: 1
"""


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"MLYARD_STEP_WARM": "2", "MLYARD_STEP_WARM_MODULES": "decimal", "MLYARD_STEP_WARM_IDLE": "0"}
    server = start_server(tmp_path_factory.mktemp("warm"), "--agents", "1", env=env)
    yield server
    server.stop()


def _health_count(server: Server, wanted: int) -> int:
    count = -1
    for _ in range(200):  # the agent starts its sandbox after the server answers
        with server.client() as api:
            count = int(api.get("/health").json()["warm_step_sandboxes"])
        if count == wanted:
            break
        time.sleep(0.1)
    return count


def test_python_steps_of_a_pipeline_run_warm_and_share_nothing(warm_server: Server, git: Git) -> None:
    assert _health_count(warm_server, 2) == 2
    with warm_server.client() as api:
        api.post("/api/v1/repos", json={"name": "warm"}).raise_for_status()
    work = git.cwd / "warm"
    git("clone", "-q", warm_server.remote("warm"), str(work))
    git.commit({"ci.yml": PIPELINE}, "ci", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    with warm_server.client() as api:
        api.post("/api/v1/pipelines", json={"name": "warm-ci", "repo": "warm", "yaml": "ci.yml"}).raise_for_status()
        api.post("/api/v1/pipelines/warm-ci/runs", json={}).raise_for_status()
    [queued] = wait_runs(warm_server, "warm-ci", 1)
    done = wait_state(warm_server, queued["id"], timeout=90)
    text = logs(warm_server, done["id"])
    assert done["state"] == "succeeded", text
    lines = text.splitlines()
    assert sum(line.endswith("Z warm") for line in lines) == 2 and "cold" not in text.replace("else 'cold'", ""), text
    assert not any(line.endswith("cold") for line in lines), [line for line in lines if line.endswith("cold")]
    assert any(line.endswith("left over: False") for line in lines)
    assert any(line.endswith("exit code 3") for line in lines)
    assert _health_count(warm_server, 2) == 2  # each used sandbox was replaced; the echo step took none
