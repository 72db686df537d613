"""The suite's `mlyard server` processes are forked from a per-worker fork server that imported the platform once
(tests/cli_fork.py, `Server.start`): each must still be the process a real start gives (its own session, argv,
environment, working directory, log, exit code and signals), and its children must see the test's environment,
not the fork server's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests import conftest
from tests.conftest import ForkedProcess, Forks, Server, local_agents, new_server

pytestmark = pytest.mark.slow

ONLY_THE_FORK_SERVERS = {"MLYARD_AGENT_MINUTE_SECONDS": "99"}  # a variable local agents keep (AGENT_VARIABLES)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Forks]:
    """A server fork server of the test's own, started with a variable in its environment that the servers
    forked from it are not given."""
    if os.environ.get("MLYARD_TEST_CLI_FORKS") == "0":
        pytest.skip("MLYARD_TEST_CLI_FORKS=0: the suite starts no forked process")
    with monkeypatch.context() as patch:
        for name, value in ONLY_THE_FORK_SERVERS.items():
            patch.setenv(name, value)
        own = Forks("server")
    monkeypatch.setitem(conftest._FORKS, "server", own)
    yield own
    own.close()


def test_a_forked_server_is_a_process_of_its_own_with_the_tests_environment(forks: Forks, tmp_path: Path) -> None:
    server = new_server(tmp_path, "--agents", "1", env={"MLYARD_STEP_WARM_IDLE": "7", "TZ": "Etc/GMT+5"})
    server.start()
    try:
        proc = server.proc
        assert isinstance(proc, ForkedProcess)
        assert os.getsid(proc.pid) == os.getpgid(proc.pid) == proc.pid  # its own session (Server.kill: killpg)
        assert Path(f"/proc/{proc.pid}/cwd").resolve() == Path.cwd().resolve()
        # the kernel's copy of its start-up environment is the fork server's; what it uses and passes on is the test's
        assert b"Etc/GMT+5" not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        text = server.log.read_text()
        assert f"mlyard server on {server.url} (home {server.home.resolve()})" in text  # its argv and MLYARD_HOME
        [agent] = local_agents(proc.pid)
        environ = agent.environ()
        assert environ.get("MLYARD_STEP_WARM_IDLE") == "7" and environ.get("TZ") == "Etc/GMT+5"
        assert "MLYARD_AGENT_MINUTE_SECONDS" not in environ  # the fork server's own environment does not leak
        assert proc.poll() is None and proc.returncode is None
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        proc.send_signal(signal.SIGTERM)  # the server handles it: drains, stops its agents, and then (uvicorn)
        ended = -signal.SIGTERM  # raises the signal again: a real `python -m mlyard server` also ends so
        assert proc.wait(timeout=60) == ended and proc.poll() == ended and proc.returncode == ended
        assert "Application shutdown complete" in server.log.read_text()
        assert not psutil.pid_exists(agent.pid) or agent.status() == psutil.STATUS_ZOMBIE
        proc.send_signal(signal.SIGTERM)  # ended: nothing is signalled (as Popen)
    finally:
        server.stop()


def test_a_killed_forked_server_reports_the_signal_and_a_failed_one_its_exit_code(
    forks: Forks, tmp_path: Path
) -> None:
    server = new_server(tmp_path / "killed", "--agents", "0")
    server.start()
    assert isinstance(server.proc, ForkedProcess)
    server.kill()  # os.killpg(pid, SIGKILL), as a crash
    assert server.proc.returncode == -signal.SIGKILL
    codes = []
    for cold in (False, True):  # a server that cannot bind its port (uvicorn's start-up failure): as a real one
        busy = new_server(tmp_path / f"busy-{cold}", "--agents", "0", cold=cold)
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", busy.port))
            holder.listen()
            with pytest.raises(RuntimeError, match="server exited"):
                busy.start()
        assert busy.proc is not None and isinstance(busy.proc, ForkedProcess) != cold
        assert "address already in use" in busy.log.read_text()
        codes.append(busy.proc.returncode)
    assert codes[0] == codes[1] != 0

def test_which_servers_are_new_interpreters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cold servers, those that start the early MLflow zygote before their imports, those whose Python settings
    differ and all with MLYARD_TEST_CLI_FORKS=0 are `python -m mlyard server`; the rest are forked."""
    if os.environ.get("MLYARD_TEST_CLI_FORKS") == "0":
        pytest.skip("MLYARD_TEST_CLI_FORKS=0: the suite starts no forked process")

    def forked(server: Server) -> bool:
        return server.fork_server(server.environment()) is not None

    assert forked(new_server(tmp_path / "a"))
    assert not forked(new_server(tmp_path / "b", cold=True))
    assert not forked(new_server(tmp_path / "c", env={"MLYARD_REGISTRY_WARM": "1"}))
    assert not forked(new_server(tmp_path / "d", env={"PYTHONHASHSEED": "1"}))
    monkeypatch.setenv("MLYARD_TEST_CLI_FORKS", "0")
    assert not forked(new_server(tmp_path / "e"))
