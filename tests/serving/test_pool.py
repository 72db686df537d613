"""The warm pool of scoring processes (mlyard.serving.pool), the readiness pipe and the cheap requirement check."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlyard.serving.limits import thread_pool_env
from mlyard.serving.model import requirement_mismatches
from mlyard.serving.pool import WarmPool
from mlyard.serving.process import EndpointFailed, start_endpoint
from tests.conftest import TLS, free_port
from tests.serving.conftest import MODEL, Store


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**base, "PYTHONUNBUFFERED": "1", **thread_pool_env(1)}


def _warm(pool: WarmPool, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pool.status().warm < pool.size:
        assert time.monotonic() < deadline, "the pool did not warm up"
        time.sleep(0.1)


def test_requirement_mismatches_name_what_this_python_lacks(tmp_path: Path) -> None:
    import numpy

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# a comment\n-r other.txt\nnumpy\n"
        f"numpy=={numpy.__version__}\nnumpy<1.0\nno-such-package-mlyard==1.0\n./local/path\n"
        "numpy<1.0 ; python_version < '3.0'\n"
    )
    assert requirement_mismatches(requirements) == [
        f"numpy (current: {numpy.__version__}, required: numpy<1.0)",
        "no-such-package-mlyard (current: uninstalled, required: no-such-package-mlyard==1.0)",
    ]
    assert requirement_mismatches(tmp_path / "missing.txt") == []


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmPool]:
    """One warm pool of one process for this module's tests: the second test's failed start takes the replacement
    the first test's deployment left (each warm process is seconds of CPU: MLflow, scikit-learn and pandas)."""
    warm = WarmPool(sys.executable, _env(), size=1, log_file=tmp_path_factory.mktemp("pool") / "pool.log")
    try:
        warm.fill()
        yield warm
    finally:
        warm.close()


@pytest.mark.slow
def test_a_warm_process_serves_one_deployment_and_is_replaced(pool: WarmPool, store: Store, tmp_path: Path) -> None:
    _warm(pool)
    start = pool.status()
    first = pool._idle[0].process.pid
    port = free_port()
    endpoint = start_endpoint(f"models:/{MODEL}/1", port=port, tracking_uri=store.uri, log_file=tmp_path / "a.log",
                              env=_env(), cpu=1, pool=pool)  # fmt: skip
    try:
        assert endpoint.pid == first  # the warm process became the scoring server
        body = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, 3.0]]}}
        answer = httpx.post(f"{endpoint.url}/invocations", timeout=30, json=body, verify=TLS)
        assert answer.status_code == 200 and answer.json()["predictions"] == store.predict([[1.0, 2.0, 3.0]])
        assert httpx.get(f"{endpoint.url}/version", timeout=30, verify=TLS).json()["model_version"] == "1"
        assert "on http://" in (tmp_path / "a.log").read_text()  # its output went to the deployment's log
        assert psutil.Process(first).cpu_affinity() == sorted(os.sched_getaffinity(0))[:1]
        _warm(pool)  # a replacement, never the same process
        assert pool._idle[0].process.pid != first
        status = pool.status()
        assert (status.handed_out - start.handed_out, status.cold_starts - start.cold_starts, status.warm) == (1, 0, 1)
    finally:
        endpoint.stop()
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    # another deployment, with other native thread pool sizes: the warm process does not fit, a cold start
    other = {**_env(), **thread_pool_env(2)}
    second = start_endpoint(f"models:/{MODEL}/2", port=free_port(), tracking_uri=store.uri,
                            log_file=tmp_path / "b.log", env=other, pool=pool)  # fmt: skip
    try:
        assert second.pid != pool._idle[0].process.pid and pool.status().cold_starts == start.cold_starts + 1
        assert httpx.get(f"{second.url}/version", timeout=30, verify=TLS).json()["model_version"] == "2"
    finally:
        second.stop()


@pytest.mark.slow
def test_a_warm_process_that_fails_reports_its_log_and_a_standby_without_assignment_exits(
    pool: WarmPool, store: Store, tmp_path: Path
) -> None:
    _warm(pool)
    taken = pool._idle[0].process
    with pytest.raises(EndpointFailed) as failed:
        start_endpoint(f"models:/{MODEL}/9", port=free_port(), tracking_uri=store.uri,
                       log_file=tmp_path / "c.log", env=_env(), timeout=120, pool=pool)  # fmt: skip
    assert "exited with code 3" in failed.value.message
    assert "has no version 9" in failed.value.message
    assert taken.wait(timeout=30) == 3  # the warm process took the deployment and failed it
    # The replacement the failed start asked for (the pool starts one anyway): when the pool's end of its stdin
    # closes (the server stopped or died), the warm process exits, serving nothing.
    _warm(pool)
    process = pool._idle[0].process
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=30) == 0


@pytest.mark.slow
def test_closing_the_pool_stops_its_idle_processes(tmp_path: Path) -> None:
    """(Was the end of the first test, whose pool was its own.) A pool of its own, closed at once: its process is
    stopped whether it is still importing or warm (closing kills its process group either way)."""
    pool = WarmPool(sys.executable, _env(), size=1, log_file=tmp_path / "pool.log")
    try:
        pool.fill()
        idle = [s.process for s in pool._idle]
    finally:
        pool.close()
    assert len(idle) == 1 and all(p.poll() is not None for p in idle)
