"""Run the scoring server: `python -m mlyard.serving --model-uri URI --port P`.

One process, one model, loaded once before the socket is opened, so the first successful
`GET /ping` means the model is ready. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlyard.errors import MlyardError

DEFAULT_HOST = "127.0.0.1"


def serve(
    model_uri: str, *, port: int, host: str = DEFAULT_HOST, tracking_uri: str | None = None,
    artifacts_destination: Path | None = None, inference_log: str | None = None, sample_rate: float = 0.1,
    full_below: int = 50,
) -> None:  # fmt: skip
    """Load the model, then serve it with uvicorn until SIGINT/SIGTERM (then flush the inference log)."""
    from mlyard.serving.model import check_model_uri

    check_model_uri(model_uri, tracking_uri)  # fails before the imports below (seconds)
    import uvicorn

    from mlyard.serving.app import create_app

    app = create_app(model_uri, tracking_uri, artifacts_destination=artifacts_destination, inference_log=inference_log,
                     sample_rate=sample_rate, full_below=full_below)  # fmt: skip
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
    try:
        uvicorn.Server(config).run()
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
              sample_rate=args.log_sample_rate, full_below=args.log_full_below)  # fmt: skip
    except MlyardError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
