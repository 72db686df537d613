"""MLflow's own tracking server for one environment: a child process listening on a Unix socket.

The process is MLflow's server app (`mlflow.server.fastapi_app:app`, the Flask handlers wrapped in
FastAPI) run by uvicorn with one worker, configured the way `mlflow server --backend-store-uri URI
--serve-artifacts --artifacts-destination DIR` configures its workers: through MLflow's
`_MLFLOW_SERVER_*` environment variables. MLflow keeps its store, artifact repository and tracking URI
in module globals, so one process serves one environment; mlyard's server mounts the processes of all
environments behind its token check (`mlyard.api.mlflow_mount`).

The socket lives in a private folder (mode 0700) under the system temp folder, which the sandbox of
steps replaces by its own: only the server's own user reaches it, and never a step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from mlyard.errors import InvalidInput, MlyardError
from mlyard.registry.store import ARTIFACTS_DIR, init_store, is_remote, sqlite_path, sqlite_uri

APP = "mlflow.server.fastapi_app:app"
LOG_FILE = "mlflow-server.log"
STOP_SECONDS = 10.0
LOG_TAIL_LINES = 20
# Variables of the server's environment the child keeps: nothing secret, only what Python needs to run.
KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH")


@dataclass(frozen=True)
class TrackingServerSpec:
    """Where one environment's MLflow server keeps its data and listens."""

    env: str
    backend_uri: str  # sqlite:///<env dir>/mlflow.db
    artifacts_dir: Path  # the destination of proxied artifacts (`--artifacts-destination`)
    socket: Path
    log: Path
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. the mark that lets a restarted server kill orphans

    @classmethod
    def for_environment(
        cls, env: str, tracking_uri: str, socket_dir: Path, *, extra_env: tuple[tuple[str, str], ...] = ()
    ) -> TrackingServerSpec:
        """The spec of an embedded environment (`sqlite:///...`); a remote MLflow is refused."""
        if is_remote(tracking_uri):
            raise InvalidInput(
                f"environment {env!r} uses the MLflow tracking server {tracking_uri}: use that URL directly "
                "(mlyard serves /mlflow/<env> only for environments with the embedded store)"
            )
        db = sqlite_path(tracking_uri)
        return cls(
            env=env,
            backend_uri=sqlite_uri(db),
            artifacts_dir=db.parent / ARTIFACTS_DIR,
            socket=socket_dir / f"{env}.sock",
            log=db.parent / LOG_FILE,
            extra_env=extra_env,
        )

    def argv(self) -> list[str]:
        """`python -m mlyard.registry.tracking_server SOCKET`: `main` below, in the child."""
        return [sys.executable, "-m", "mlyard.registry.tracking_server", str(self.socket)]

    def environment(self) -> dict[str, str]:
        """What `mlflow server --serve-artifacts` gives its workers, and nothing of the server's secrets."""
        env = {name: os.environ[name] for name in KEPT_VARIABLES if os.environ.get(name)}
        env.update({
            "_MLFLOW_SERVER_FILE_STORE": self.backend_uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": self.backend_uri,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(self.artifacts_dir),
            "_MLFLOW_SGI_NAME": "uvicorn",
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": tempfile.gettempdir(),
        })
        env.update(dict(self.extra_env))
        return env


class TrackingServer:
    """One environment's MLflow server process (started by `start`, stopped by `stop`)."""

    def __init__(self, spec: TrackingServerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process, which initialises the store (MLflow's schema, once, under its lock) before it
        serves: the imports that takes are those of MLflow's server app, paid once, in the child."""
        self.spec.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket.unlink()
        with open(self.spec.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.spec.argv(),
                env=self.spec.environment(),
                cwd=self.spec.artifacts_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_report(self) -> str:
        """Why the process is gone: its exit code and the end of its log."""
        code = self.proc.returncode if self.proc is not None else None
        try:
            with open(self.spec.log, encoding="utf-8", errors="replace") as log:
                tail = "".join(deque(log, maxlen=LOG_TAIL_LINES)).strip()
        except OSError:
            tail = ""
        return f"exited with code {code}" + (f": {tail}" if tail else f" (log: {self.spec.log})")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_SECONDS (to the process group: uvicorn and anything it started)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket.unlink()


def socket_folder() -> Path:
    """A private folder (0700) for the servers' sockets, with a short path (sockets allow ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="mlyard-mlflow-"))


def remove_socket_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """The child: initialise the store named by `_MLFLOW_SERVER_FILE_STORE` (under its lock, as every other
    opener of the store does), then run MLflow's server app with uvicorn on the Unix socket `argv[0]`, as
    `uvicorn --uds SOCKET --workers 1 --no-access-log --log-level warning mlflow.server.fastapi_app:app`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlyard.registry.tracking_server SOCKET", file=sys.stderr)
        return 2
    backend = os.environ.get("_MLFLOW_SERVER_FILE_STORE", "")
    destination = os.environ.get("_MLFLOW_SERVER_ARTIFACT_DESTINATION", "")
    try:
        init_store(backend, Path(destination) if destination else None)
    except MlyardError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    import uvicorn

    uvicorn.run(APP, uds=args[0], workers=1, access_log=False, log_level="warning", timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
