"""Start, watch and stop scoring server processes (what the platform's supervisor needs).

Each endpoint is `python -m mlyard.serving ...` in its own process group, started with an argv
list and an explicit environment, its output appended to a log file. A zero-downtime redeploy is
`start_endpoint` (new port) -> switch traffic -> `Endpoint.stop()` on the old one.

This module imports neither MLflow nor the app, so the platform can use it cheaply.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from mlyard.errors import Conflict, Unprocessable
from mlyard.serving.limits import thread_pool_env
from mlyard.serving.zygote import Forked

if TYPE_CHECKING:
    from mlyard.serving.pool import WarmPool

DEFAULT_PORTS = range(8600, 8700)
_LOG_TAIL_BYTES = 4000


class EndpointFailed(Unprocessable):
    """A scoring server did not become healthy; the message carries the end of its log. A 422, not a 500: the
    model version (its files, flavor or requirements) is what did not start; the message says what to look at."""


def find_free_port(ports: range = DEFAULT_PORTS, host: str = "127.0.0.1") -> int:
    """The first port in `ports` nobody listens on (bind-tested; another process may still take it)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise Conflict(f"no free port in {ports.start}-{ports.stop - 1} on {host}: stop an endpoint or widen the range")


def ping(url: str, timeout: float = 2.0) -> bool:
    """True when `GET {url}/ping` answers 200."""
    host_port = url.removeprefix("http://").rstrip("/")
    host, _, port = host_port.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_healthy(url: str, timeout: float, *, process: subprocess.Popen[bytes] | Forked | None = None) -> None:
    """Poll `/ping` until it answers 200; raise `EndpointFailed` on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    port = int(url.rstrip("/").rpartition(":")[2])
    while True:
        # Another process may answer on the port (a scoring server of another mlyard server that took it
        # first): healthy means our own process listens there.
        if ping(url) and (process is None or _listens(process.pid, port)):
            return
        if process is not None and process.poll() is not None:
            code = process.returncode
            raise EndpointFailed(f"scoring server for {url} exited with code {code} before it was healthy")
        if time.monotonic() >= deadline:
            raise EndpointFailed(f"scoring server at {url} not healthy after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def wait_ready(ready_fd: int, url: str, timeout: float, *, process: subprocess.Popen[bytes] | Forked) -> None:
    """Wait for `ready` on the scoring server's readiness pipe (written once its socket listens, so no
    polling); raise `EndpointFailed` on timeout or when the process exits (its end of the pipe closes)."""
    from mlyard.serving.pool import _read_line

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EndpointFailed(f"scoring server at {url} not healthy after {timeout:.0f} s")
        if not select.select([ready_fd], [], [], min(remaining, 1.0))[0]:
            continue
        line = _read_line(ready_fd)
        if line == b"ready":
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        code = process.returncode
        raise EndpointFailed(f"scoring server for {url} exited with code {code} before it was healthy")


def _listens(pid: int, port: int) -> bool:
    """True when process `pid` has a listening TCP socket on `port`."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


@dataclass
class Endpoint:
    """A running scoring server process."""

    model_uri: str
    host: str
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | Forked = field(repr=False)  # Forked: a standby of the warm pool

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process group, SIGKILL it after `timeout`; return the exit code."""
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            code = self.process.wait(timeout=timeout)
        return code


def stop_process_group(pid: int, timeout: float = 10.0) -> None:
    """Stop an endpoint this process did not start (e.g. recorded before a platform restart).

    Only a process group whose leader runs `mlyard.serving` is signalled, so a recycled pid is safe.
    """
    import psutil

    try:
        if "mlyard.serving" not in psutil.Process(pid).cmdline() or os.getpgid(pid) != pid:
            return
    except (psutil.Error, ProcessLookupError):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def serve_argv(
    model_uri: str, *, port: int, host: str, tracking_uri: str | None, python: str,
    cpu: float | None = None, memory: float | None = None, artifacts_destination: Path | None = None,
    inference_log: Path | None = None, stop_with: int | None = None,
) -> list[str]:  # fmt: skip
    argv = [python, "-m", "mlyard.serving", "--model-uri", model_uri, "--host", host, "--port", str(port)]
    if stop_with is not None:
        argv += ["--stop-with", str(stop_with)]
    if inference_log is not None:
        argv += ["--inference-log", str(inference_log)]
    if tracking_uri:
        argv += ["--tracking-uri", tracking_uri]
    if artifacts_destination is not None:
        argv += ["--artifacts-destination", str(artifacts_destination)]
    if cpu:
        argv += ["--cpu", f"{cpu:g}"]
    if memory:
        argv += ["--memory", f"{memory:g}"]
    return argv


def start_endpoint(
    model_uri: str,
    *,
    port: int,
    tracking_uri: str | None,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    cwd: Path | None = None,
    python: str = sys.executable,
    timeout: float = 120.0,
    cpu: float | None = None,
    memory: float | None = None,
    artifacts_destination: Path | None = None,
    inference_log: Path | None = None,
    pool: WarmPool | None = None,
    owner: int | None = None,
) -> Endpoint:
    """Start a scoring server and wait until `/ping` is healthy (it says so on a pipe once it listens).

    With `pool`, a warm process of the pool (mlyard.serving.pool) becomes the scoring server when one fits;
    otherwise a new process starts.

    `artifacts_destination` is where the registry's MLflow server keeps proxied (`mlflow-artifacts:`)
    artifacts: a version logged through that server is loaded from there. `inference_log` is the folder
    of the deployment's inference table (docs/monitoring.md); None logs nothing.

    `cpu` and `memory` (GB) limit it (mlyard.serving.limits): ceil(cpu) cores, stopped past `memory`.

    It stops by itself when process `owner` (default: this process, which holds its handle) exits.

    `env` is the child's whole environment (default: a copy of this process's); `MLFLOW_TRACKING_URI`
    is set from `tracking_uri`. On failure the process group is stopped and `EndpointFailed`
    carries the end of the log.
    """
    child_env = dict(os.environ if env is None else env)
    if tracking_uri:
        child_env["MLFLOW_TRACKING_URI"] = tracking_uri
    child_env["PYTHONUNBUFFERED"] = "1"
    if cpu:
        child_env.update(thread_pool_env(cpu))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = serve_argv(model_uri, port=port, host=host, tracking_uri=tracking_uri, python=python, cpu=cpu, memory=memory,
                      artifacts_destination=artifacts_destination, inference_log=inference_log,
                      stop_with=os.getpid() if owner is None else owner)  # fmt: skip
    standby = pool.take(python, child_env) if pool is not None else None
    process: subprocess.Popen[bytes] | Forked
    if standby is not None:
        process, ready_fd = standby.process, standby.ready_fd
        order = {"argv": argv[3:], "env": child_env, "cwd": str(cwd or log_file.parent), "log": str(log_file)}
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps(order).encode() + b"\n")
            process.stdin.close()
        except OSError:
            standby.discard()
            standby = None
    if standby is None:
        ready_fd, write_fd = os.pipe()
        try:
            with open(log_file, "ab") as log:
                process = subprocess.Popen(
                    [*argv, "--ready-fd", str(write_fd)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env,
                    cwd=str(cwd or log_file.parent),
                    start_new_session=True,
                    pass_fds=(write_fd,),
                )
        except BaseException:
            os.close(ready_fd)
            raise
        finally:
            os.close(write_fd)
    endpoint = Endpoint(model_uri=model_uri, host=host, port=port, log_file=log_file, process=process)
    try:
        wait_ready(ready_fd, endpoint.url, timeout, process=process)
    except EndpointFailed as exc:
        endpoint.stop(timeout=5)
        raise EndpointFailed(
            f"{exc}: {model_uri} did not start; fix the model version (its files, flavor or requirements, as the "
            f"scoring server's log below says) and deploy again\n--- {log_file} (end) ---\n{log_tail(log_file)}"
        ) from None
    finally:
        os.close(ready_fd)
    return endpoint


def log_tail(log_file: Path, size: int = _LOG_TAIL_BYTES) -> str:
    """The last `size` bytes of a log file, decoded leniently."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
