"""Run the scoring server: `python -m mlyard.serving --model-uri URI --port P`.

One process, one model, loaded once before the socket is opened, so the first successful
`GET /ping` means the model is ready. Binds 127.0.0.1 unless told otherwise. With `--ready-fd N` the
process writes `ready` to file descriptor N once it listens (the platform waits on that pipe instead of
polling /ping).

`python -m mlyard.serving --zygote --control-fd N` is the platform pool's fork server (mlyard.serving.pool,
mlyard.serving.zygote): it imports what scoring needs (MLflow, pandas, uvicorn, the common flavors) once, then
forks a standby per request. A standby reads ONE assignment (a JSON line on stdin: argv, environment, working
folder, log file) and becomes that scoring server. It serves one deployment and exits with it: nothing is
shared but the imported modules' pages.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlyard.errors import MlyardError
from mlyard.imports import collector_paused

DEFAULT_HOST = "127.0.0.1"


def serve(
    model_uri: str, *, port: int, host: str = DEFAULT_HOST, tracking_uri: str | None = None,
    artifacts_destination: Path | None = None, inference_log: str | None = None, sample_rate: float = 0.1,
    full_below: int = 50, ready: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """Load the model, then serve it with uvicorn until SIGINT/SIGTERM (then flush the inference log);
    `ready` is called once the socket listens."""
    from mlyard.serving.model import check_model_uri

    check_model_uri(model_uri, tracking_uri)  # fails before the imports below (seconds)
    with collector_paused():  # the imports and the model's objects live as long as the process (mlyard.imports)
        import_scoring_modules()
        import uvicorn

        from mlyard.serving.app import create_app

        app = create_app(model_uri, tracking_uri, artifacts_destination=artifacts_destination,
                         inference_log=inference_log, sample_rate=sample_rate, full_below=full_below)  # fmt: skip
    ref = app.served.ref
    named = f" ({ref.name} version {ref.version})" if ref.name else ""
    print(f"mlyard serving {model_uri}{named} on http://{host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )
    from mlyard.asgi_server import QuietServer

    class Server(QuietServer):
        async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
            await super().startup(sockets)
            if self.started and ready is not None:
                ready()

    try:
        Server(config).run()
    finally:
        if app.logger is not None:
            app.logger.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlyard.serving", description="Serve one MLflow model with MLflow's scoring protocol."
    )
    parser.add_argument("--model-uri", required=True, help="models:/NAME/VERSION, models:/NAME@ALIAS, ...")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    parser.add_argument("--artifacts-destination", type=Path, default=None,
                        help="the local folder of the registry's proxied mlflow-artifacts: URIs")  # fmt: skip
    parser.add_argument("--cpu", type=float, default=None, help="run on ceil(CPU) cores (default: all)")
    parser.add_argument("--memory", type=float, default=None, help="stop when resident memory passes this many GB")
    parser.add_argument("--inference-log", default=None, help="log requests into the inference table in this folder")
    parser.add_argument("--log-sample-rate", type=float, default=0.1,
                        help="share of requests logged past --log-full-below requests in a second (default 0.1)")
    parser.add_argument("--log-full-below", type=int, default=50,
                        help="requests per second logged in full before sampling starts (default 50)")
    parser.add_argument("--ready-fd", type=int, default=None, help="write `ready` to this descriptor once listening")
    parser.add_argument("--stop-with", type=int, default=None, metavar="PID",
                        help="stop (as on SIGTERM) when process PID exits: the mlyard server that started it")
    return parser


def stop_with(pid: int) -> bool:
    """Stop this process as on SIGTERM (uvicorn's graceful stop: the inference log is flushed) when process `pid`
    exits: the mlyard server that started it, whose front proxy is the only way to it (a server that was killed
    would otherwise leave it running until its next start). False when `pid` is already gone."""
    import select
    import signal
    import threading

    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # no pidfd (a kernel before 5.3): not watched; the server's next start stops it, as before
        return True

    def watch() -> None:
        select.select([handle], [], [])  # readable once the process exited
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mlyard-server-watch", daemon=True).start()
    return True


def notifier(fd: int | None) -> Callable[[], None] | None:
    """A function that writes `ready` to `fd` once and closes it (None without a descriptor)."""
    if fd is None:
        return None

    def ready() -> None:
        with contextlib.suppress(OSError):
            os.write(fd, b"ready\n")
            os.close(fd)

    return ready


# Imported first, before MLflow's ~2000 modules. skops (MLflow's default format for scikit-learn models) names every
# scipy.special ufunc when it is imported: it searches sys.modules, in import order, for the first module holding
# each one (skops.io._utils.whichmodule), ~230 ufuncs times every module before scipy.special's. Imported after
# MLflow, that search took ~2 s of CPU per process; imported first, ~0.1 s. The names found are the same: the
# modules searched before scipy.special's own are then a subset of those searched otherwise.
FIRST_MODULES = ("scipy.special",)


def import_scoring_modules() -> None:
    """What a cold scoring process imports before it loads its model: FIRST_MODULES (when installed), then the
    scoring server (MLflow, pandas) and uvicorn."""
    for name in FIRST_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    importlib.import_module("uvicorn")
    importlib.import_module("mlyard.serving.app")


# What a warm process imports before its assignment: FIRST_MODULES, scoring's own modules and MLflow's store, and
# the flavors most models use (when installed). A flavor imported here but not needed costs memory only.
WARM_MODULES = (
    *FIRST_MODULES, "mlyard.serving.app", "mlflow.pyfunc", "mlflow.tracking.artifact_utils",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store", "uvicorn",
    "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.h11_impl", "uvicorn.loops.uvloop",
    "mlflow.sklearn", "sklearn", "skops.io", "packaging.requirements",
)  # fmt: skip
MAX_ASSIGNMENT_BYTES = 1024 * 1024


def zygote(control_fd: int) -> int:
    """The pool's fork server: import once, say `warm`, then fork a standby per request (mlyard.serving.zygote)."""
    from mlyard.serving.zygote import serve_forks

    with collector_paused():  # a fifth of the imports' CPU (mlyard.imports)
        for name in WARM_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    return serve_forks(control_fd, standby)


def standby(stdin_fd: int, ready_fd: int) -> int:
    """A fork of the zygote: wait for one assignment on `stdin_fd`, then serve it (0 when it closes unassigned)."""
    with open(stdin_fd, "rb") as stdin:
        line = stdin.readline(MAX_ASSIGNMENT_BYTES)
    if not line.strip():
        return 0  # the pool closed: never assigned
    try:
        order = json.loads(line)
        argv, env, cwd, log = list(order["argv"]), dict(order["env"]), str(order["cwd"]), str(order["log"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: invalid standby assignment: {exc}", file=sys.stderr, flush=True)
        return 2
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    return main([*argv, "--ready-fd", str(ready_fd)])


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--zygote"]:
        if raw[1:2] != ["--control-fd"] or len(raw) != 3 or not raw[2].isdigit():
            print("error: usage: python -m mlyard.serving --zygote --control-fd N", file=sys.stderr)
            return 2
        return zygote(int(raw[2]))
    args = _parser().parse_args(raw)
    if args.stop_with is not None and not stop_with(args.stop_with):
        print(f"error: process {args.stop_with} (--stop-with) has exited: not serving", file=sys.stderr, flush=True)
        return 1
    # Limits first: before the model (and numpy's thread pools) load, so they apply to all of it.
    if args.cpu:
        from mlyard.serving.limits import apply_cpu_limit

        cores = apply_cpu_limit(args.cpu)
        print(f"mlyard serving: cpu {args.cpu:g} -> cores {cores}", file=sys.stderr, flush=True)
    if args.memory:
        from mlyard.serving.limits import watch_memory

        watch_memory(args.memory)
    if not 0 <= args.log_sample_rate <= 1 or args.log_full_below < 0:
        print("error: --log-sample-rate must be within 0..1 and --log-full-below at least 0", file=sys.stderr)
        return 2
    try:
        serve(args.model_uri, port=args.port, host=args.host, tracking_uri=args.tracking_uri,
              artifacts_destination=args.artifacts_destination, inference_log=args.inference_log,
              sample_rate=args.log_sample_rate, full_below=args.log_full_below,
              ready=notifier(args.ready_fd))  # fmt: skip
    except MlyardError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
