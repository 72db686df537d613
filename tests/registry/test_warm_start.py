"""The server starts each environment's MLflow server in the background (at its own start and when an
environment is created), so a first registry request does not wait for MLflow's imports; each is a fork of the
zygote that `mlyard server` starts before its own imports (mlyard.registry.tracking_server.ServerZygote). (Its warm
scoring process, reported in /health, is tested in tests/deployments/test_deployments.py, whose server keeps one.)"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from mlyard.background.local_agents import MARK_VARIABLE, kill_orphans
from mlyard.registry import sqlite_uri, tracking_server
from mlyard.registry.tracking_server import ServerZygote, TrackingServerSpec, base_environment, remove_socket_folder
from tests.conftest import start_server

pytestmark = pytest.mark.slow


SECRET = "MLYARD_ZYGOTE_TEST_SECRET"  # a variable of the server's environment only (as its token would be)


def wait_for_line(log: Path, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the server's log"
        time.sleep(0.2)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def mlflow_server(home: Path, env: str) -> psutil.Process:
    """The MLflow server process of `env` (its working folder is the environment's)."""
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if "mlyard.registry.tracking_server" in proc.cmdline() and proc.cwd() == str(home / "envs" / env):
                return proc
    raise AssertionError(f"no MLflow server of environment {env!r}")


def test_each_environment_mlflow_server_is_a_fork_of_one_zygote_started_with_the_server(tmp_path: Path) -> None:
    warm = {"MLYARD_REGISTRY_WARM": "1", SECRET: "s3cret"}  # the default (tests turn it off)
    server = start_server(tmp_path, "--agents", "0", env=warm)
    try:
        wait_for_line(server.log, "registry warm: the MLflow server of environment 'dev' is ready")
        with server.client() as api:
            zygote = api.get("/health").json()["mlflow_zygote"]
            assert zygote["warm"] and not zygote["failed"]
            # It imported MLflow's server app (numpy's libraries are mapped) without the optional packages that
            # the app's modules only probe for (pyarrow's and scipy's libraries are not).
            regions = psutil.Process(zygote["pid"]).memory_maps()
            mapped = {part for region in regions for part in Path(region.path).parts}
            assert "numpy" in mapped and not mapped & set(tracking_server.UNPROBED)
            assert api.get("/mlflow/dev/api/2.0/mlflow/registered-models/search").status_code == 200
            assert api.post("/api/v1/environments", json={"name": "staging-env"}).status_code == 201
            wait_for_line(server.log, "registry warm: the MLflow server of environment 'staging-env' is ready")
            assert api.get("/mlflow/staging-env/api/2.0/mlflow/experiments/search",
                           params={"max_results": 5}).status_code == 200  # fmt: skip
            dev, staging = mlflow_server(server.home, "dev"), mlflow_server(server.home, "staging-env")
            # both forked by the one zygote the server started before its imports (its child, its command line)
            assert dev.ppid() == staging.ppid() == zygote["pid"]
            assert psutil.Process(zygote["pid"]).ppid() == server.proc.pid  # type: ignore[union-attr]
            assert dev.cmdline() == psutil.Process(zygote["pid"]).cmdline()  # forked, never exec'd
            # The zygote (and so every fork: its /proc environ is the zygote's) has the clean base environment and
            # the server's orphan mark, never the server's own variables (its token, its home's secrets).
            for proc in (psutil.Process(zygote["pid"]), dev):
                environ = proc.environ()
                assert SECRET not in environ and "MLYARD_HOME" not in environ
                assert set(environ) <= {*base_environment(), MARK_VARIABLE}
                assert environ[MARK_VARIABLE] == str(server.home)
            # An environment's MLflow server killed: the next request forks a new one.
            dev.kill()
            for _ in range(100):  # one that meets the dying process gets 503 (test_tracking_server.py)
                answer = api.get("/mlflow/dev/api/2.0/mlflow/registered-models/search")
                if answer.status_code != 503:
                    break
                time.sleep(0.1)
            assert answer.status_code == 200, answer.text
            again = mlflow_server(server.home, "dev")
            assert again.pid != dev.pid and again.ppid() == zygote["pid"]
        text = server.log.read_text(errors="replace")
        assert text.count("registry warm: the MLflow server of environment 'dev'") == 1  # warmed once, not again
        assert "environment 'test'" not in text and "environment 'prod'" not in text  # only the first (default 1)
        assert "process of its own" not in text  # none started cold
        # The server killed (SIGKILL: nothing of it runs): its zygote and the forks stop by themselves.
        processes = [zygote["pid"], again.pid, staging.pid]
        folder = Path(psutil.Process(zygote["pid"]).cwd())  # the sockets' (a killed server leaves it)
        server.kill()
        deadline = time.monotonic() + 60
        while not all(gone(pid) for pid in processes):
            assert time.monotonic() < deadline, [pid for pid in processes if not gone(pid)]
            time.sleep(0.2)
        remove_socket_folder(folder)
    finally:
        server.stop()


def test_a_fork_serves_the_environment_it_is_given_and_stops_with_the_server(tmp_path: Path) -> None:
    mark = (MARK_VARIABLE, str(tmp_path / "home"))
    zygote = ServerZygote.start(mark=mark)
    server = None
    try:
        spec = TrackingServerSpec.for_environment("dev", sqlite_uri(tmp_path / "env" / "mlflow.db"), zygote.folder,
                                                  extra_env=(mark,))  # fmt: skip
        server = zygote.fork(spec)
        assert server is not None and server.proc is not None
        assert psutil.Process(server.proc.pid).ppid() == zygote.pid
        transport = httpx.HTTPTransport(uds=str(spec.socket))
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=10) as client:
            deadline = time.monotonic() + 240
            while not spec.socket.exists() or client.get("/health").status_code != 200:
                assert server.running() and time.monotonic() < deadline, server.exit_report()
                time.sleep(0.2)
            found = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}).json()
        # the store, artifacts and log it was given when forked: the environment's
        assert found["experiment"]["artifact_location"] == (tmp_path / "env" / "mlartifacts" / "0").as_uri()
        assert spec.log.is_file()
        # the zygote's warm-up (MLflow's routes, by requests that match none) opened no store where it ran
        assert {p.name for p in zygote.folder.iterdir()} <= {"zygote.log", spec.socket.name}
        # the mark a restarted server looks for is in the fork's /proc environ (its zygote's): an orphan is found
        assert psutil.Process(server.proc.pid).environ()[MARK_VARIABLE] == mark[1]
        assert kill_orphans(mark[1], keep=frozenset({zygote.pid, server.proc.pid})) == 0  # the server's own: kept
        # the server's end of its standard input closes (the server exited, or was killed): it stops by itself,
        # and the zygote reports its exit code
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(60) is not None
        # a zygote left by a killed server: a restarted server of the same home kills it by its mark
        assert kill_orphans(mark[1]) == 1
        assert zygote.zygote.process.wait(60) == -signal.SIGKILL
    finally:
        if server is not None:
            server.stop()
        zygote.close()
        remove_socket_folder(zygote.folder)


def test_a_zygote_stops_when_the_server_closes_it() -> None:
    """Also while it still imports (a refused command line's, at exit): at once, not after its import."""
    zygote = ServerZygote.start()
    zygote.close()
    assert zygote.zygote.process.returncode == -signal.SIGKILL  # it did not finish its import first
    remove_socket_folder(zygote.folder)
    assert zygote.zygote.process.poll() is not None and not zygote.alive()
    assert os.path.isdir(zygote.folder) is False


def test_a_zygote_that_fails_to_start_forks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zygote that exits before it is warm (here: its module is missing; in life, threads left by the imports) is
    `failed`, and `fork` answers None: the mount then starts the environment's MLflow server as a process of its
    own (docs/registry.md)."""
    monkeypatch.setattr(tracking_server, "MODULE", "mlyard_no_such_module")
    zygote = ServerZygote.start()
    try:
        spec = TrackingServerSpec.for_environment("dev", sqlite_uri(tmp_path / "env" / "mlflow.db"), zygote.folder)
        assert zygote.fork(spec, timeout=60) is None
        assert zygote.failed() and not zygote.status().warm and zygote.status().failed
        assert "No module named mlyard_no_such_module" in (zygote.folder / "zygote.log").read_text()
    finally:
        zygote.close()
        remove_socket_folder(zygote.folder)
