"""The warm pool of scoring processes (mlyard.serving.pool), the readiness pipe and the cheap requirement check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlyard.serving.limits import thread_pool_env
from mlyard.serving.model import requirement_mismatches
from mlyard.serving.pool import PoolStatus, WarmPool
from mlyard.serving.process import Endpoint, EndpointFailed, start_endpoint
from mlyard.serving.zygote import EXIT_UNKNOWN
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
    """One warm pool of one standby for this module's tests: one zygote imports once, and every standby the tests
    take (and the replacements) is a fork of it; the last test kills it and the pool starts another."""
    warm = WarmPool(sys.executable, _env(), size=1, log_file=tmp_path_factory.mktemp("pool") / "pool.log")
    try:
        warm.fill()
        yield warm
    finally:
        warm.close()


def _zygote_pid(pool: WarmPool) -> int:
    assert pool._zygote is not None
    return pool._zygote.process.pid


def _version(endpoint: Endpoint) -> str:
    return str(httpx.get(f"{endpoint.url}/version", timeout=30, verify=TLS).json()["model_version"])


@pytest.mark.slow
def test_standbys_are_forks_of_one_zygote_each_serving_one_deployment(
    pool: WarmPool, store: Store, tmp_path: Path
) -> None:
    """Two deployments in turn take two standbys: both forked by the same zygote (its children, same command
    line: no new interpreter for the replacement), each serving its own version only."""
    _warm(pool)
    start = pool.status()
    zygote = _zygote_pid(pool)
    first = pool._idle[0].process.pid
    assert start.zygote_warm and psutil.Process(first).ppid() == zygote
    endpoint = start_endpoint(f"models:/{MODEL}/1", port=free_port(), tracking_uri=store.uri,
                              log_file=tmp_path / "a.log", env=_env(), cpu=1, pool=pool)  # fmt: skip
    try:
        assert endpoint.pid == first  # the warm process became the scoring server
        body = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, 3.0]]}}
        answer = httpx.post(f"{endpoint.url}/invocations", timeout=30, json=body, verify=TLS)
        assert answer.status_code == 200 and answer.json()["predictions"] == store.predict([[1.0, 2.0, 3.0]])
        assert _version(endpoint) == "1"
        assert "on http://" in (tmp_path / "a.log").read_text()  # its output went to the deployment's log
        assert psutil.Process(first).cpu_affinity() == sorted(os.sched_getaffinity(0))[:1]
        assert os.getpgid(first) == first and os.getsid(first) == first  # its own session, as stop_process_group needs
        _warm(pool)  # a replacement, never the same process: another fork of the same zygote
        replacement = pool._idle[0].process.pid
        assert replacement != first and _zygote_pid(pool) == zygote
        assert psutil.Process(replacement).ppid() == zygote
        assert psutil.Process(replacement).cmdline() == psutil.Process(zygote).cmdline()  # forked, never exec'd
        second = start_endpoint(f"models:/{MODEL}/2", port=free_port(), tracking_uri=store.uri,
                                log_file=tmp_path / "b.log", env=_env(), cpu=1, pool=pool)  # fmt: skip
        try:
            assert second.pid == replacement and (_version(endpoint), _version(second)) == ("1", "2")
            assert f"{MODEL}/2" not in (tmp_path / "a.log").read_text()  # each its own log
            assert "on http://" in (tmp_path / "b.log").read_text()
            status = pool.status()
            assert (status.handed_out - start.handed_out, status.cold_starts - start.cold_starts) == (2, 0)
        finally:
            assert second.stop() == -signal.SIGTERM  # the zygote reaped it and reported its code (uvicorn re-raises)
    finally:
        assert endpoint.stop() == -signal.SIGTERM
    assert not psutil.pid_exists(first)  # reaped by the zygote: no zombie
    # another deployment, with other native thread pool sizes: the warm process does not fit, a cold start
    other = {**_env(), **thread_pool_env(2)}
    cold = start_endpoint(f"models:/{MODEL}/2", port=free_port(), tracking_uri=store.uri,
                          log_file=tmp_path / "c.log", env=other, pool=pool)  # fmt: skip
    try:
        _warm(pool)
        assert cold.pid != pool._idle[0].process.pid and pool.status().cold_starts == start.cold_starts + 1
        assert psutil.Process(cold.pid).ppid() == os.getpid() and _version(cold) == "2"
    finally:
        cold.stop()


@pytest.mark.slow
def test_a_warm_process_that_fails_reports_its_log_and_a_standby_without_assignment_exits(
    pool: WarmPool, store: Store, tmp_path: Path
) -> None:
    _warm(pool)
    taken = pool._idle[0].process
    with pytest.raises(EndpointFailed) as failed:
        start_endpoint(f"models:/{MODEL}/9", port=free_port(), tracking_uri=store.uri,
                       log_file=tmp_path / "c.log", env=_env(), timeout=120, pool=pool)  # fmt: skip
    assert "exited with code 3" in failed.value.message  # the code the zygote reaped and reported
    assert "has no version 9" in failed.value.message
    assert taken.wait(timeout=30) == 3  # the warm process took the deployment and failed it
    # The replacement the failed start asked for (the pool forks one anyway): when the pool's end of its stdin
    # closes (the server stopped or died), the warm process exits, serving nothing.
    _warm(pool)
    process = pool._idle[0].process
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=30) == 0


@pytest.mark.slow
def test_a_scoring_server_stops_when_the_process_that_started_it_exits(
    pool: WarmPool, store: Store, tmp_path: Path
) -> None:
    """A scoring server stops (gracefully, as on SIGTERM) when its owner exits, e.g. a killed mlyard server, whose
    front proxy was the only way to it (it used to run until that server's next start); one whose owner is gone
    before it starts does not serve."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        endpoint = start_endpoint(f"models:/{MODEL}/1", port=free_port(), tracking_uri=store.uri, pool=pool,
                                  log_file=tmp_path / "a.log", env=_env(), cpu=1, owner=owner.pid)  # fmt: skip
        try:
            assert _version(endpoint) == "1"
            owner.kill()
            owner.wait(timeout=30)
            deadline = time.monotonic() + 30
            while endpoint.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not endpoint.alive()
        finally:
            assert endpoint.stop() == -signal.SIGTERM  # its graceful stop (uvicorn re-raises the SIGTERM)
    finally:
        owner.kill()
    with pytest.raises(EndpointFailed) as failed:
        start_endpoint(f"models:/{MODEL}/1", port=free_port(), tracking_uri=store.uri, log_file=tmp_path / "b.log",
                       env=_env(), cpu=1, pool=pool, owner=owner.pid)  # fmt: skip
    assert f"process {owner.pid} (--stop-with) has exited" in failed.value.message


@pytest.mark.slow
def test_a_killed_zygote_leaves_its_forks_serving_and_the_pool_starts_another(
    pool: WarmPool, store: Store, tmp_path: Path
) -> None:
    """(The standby the previous test left idle has exited: the deployment gets a fork made on the spot, never a
    cold start.) The zygote killed: the deployment it forked keeps serving and the pool starts another zygote,
    whose imports a deployment then waits for rather than starting cold."""
    start = pool.status()
    old = _zygote_pid(pool)
    endpoint = start_endpoint(f"models:/{MODEL}/1", port=free_port(), tracking_uri=store.uri,
                              log_file=tmp_path / "a.log", env=_env(), cpu=1, pool=pool)  # fmt: skip
    try:
        assert pool.status().cold_starts == start.cold_starts and psutil.Process(endpoint.pid).ppid() == old
        _warm(pool)
        idle = pool._idle[0].process
        os.kill(old, signal.SIGKILL)
        assert pool._zygote is not None and pool._zygote.process.wait(timeout=30) == -signal.SIGKILL
        assert endpoint.alive() and _version(endpoint) == "1"  # still serving, its handle still tells
        # the standby forked before the kill still serves the next deployment
        second = start_endpoint(f"models:/{MODEL}/2", port=free_port(), tracking_uri=store.uri,
                                log_file=tmp_path / "b.log", env=_env(), cpu=1, pool=pool)  # fmt: skip
        assert second.pid == idle.pid and _version(second) == "2"
        # a stopped fork whose zygote is gone: dead, its code unknown (EXIT_UNKNOWN, logged), no hang
        assert second.stop(timeout=30) == EXIT_UNKNOWN and not second.alive()
        # none idle, and the new zygote (the take above started it) still importing: the next deployment waits
        # for its imports and is its fork, not a cold start doing the same imports beside it
        third = start_endpoint(f"models:/{MODEL}/1", port=free_port(), tracking_uri=store.uri,
                               log_file=tmp_path / "c.log", env=_env(), cpu=1, pool=pool)  # fmt: skip
        try:
            assert psutil.Process(third.pid).ppid() == _zygote_pid(pool) != old and _version(third) == "1"
            assert pool.status().cold_starts == start.cold_starts
        finally:
            third.stop()
        _warm(pool)  # the new zygote forked the replacement
        assert _zygote_pid(pool) != old and pool.status().zygote_warm
        assert psutil.Process(pool._idle[0].process.pid).ppid() == _zygote_pid(pool)
        assert endpoint.alive() and _version(endpoint) == "1"
    finally:
        endpoint.stop()


@pytest.mark.slow
def test_closing_the_pool_stops_its_zygote_and_idle_processes(tmp_path: Path) -> None:
    """(Was the end of the first test, whose pool was its own.) A pool of its own, closed at once: its zygote is
    stopped whether it is still importing or warm, and so are its idle standbys."""
    pool = WarmPool(sys.executable, _env(), size=1, log_file=tmp_path / "pool.log")
    try:
        pool.fill_later()
        deadline = time.monotonic() + 30
        while pool._zygote is None and time.monotonic() < deadline:
            time.sleep(0.05)
        zygote = pool._zygote
        assert zygote is not None
    finally:
        pool.close()
    assert zygote.process.poll() is not None and pool.status().warm == 0
    assert not pool.status().zygote_warm


def test_a_pool_of_size_zero_starts_no_zygote(tmp_path: Path) -> None:
    pool = WarmPool(sys.executable, _env(), size=0, log_file=tmp_path / "pool.log")
    pool.fill()
    assert pool.take(sys.executable, _env()) is None and pool._zygote is None
    assert pool.status() == PoolStatus(0, 0, 0, 0, 1, False, False)
