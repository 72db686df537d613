"""mlyard's `local` scoring server versus `mlflow models serve --env-manager local`, same model, one run.

Creates a temporary SQLite MLflow store (initialised once, before any server starts), trains and
registers a LogisticRegression on scikit-learn's bundled breast cancer data, then for each server,
one at a time, on loopback: startup to the first healthy /ping, p50/p99 latency of 1-row and
100-row `dataframe_split` requests (sequential, one keep-alive connection, after warm-up), and
requests per second with 8 concurrent clients (threads, one keep-alive http.client connection
each, 1-row requests, bounded by count and time). Both servers run with their defaults: one
process (MLflow's `--workers` defaults to 1). Predictions are checked for every input format.

Targets: startup no slower than MLflow's; p50 at most half of MLflow's; throughput at least twice
MLflow's; identical predictions.

Startup as a deployment gets it (docs/serving.md): the mlyard server keeps a warm pool process that has
imported MLflow and the flavors; `start_endpoint(..., pool=...)` hands it the model and waits on its
readiness pipe. Timed here from the call to the first 200 from /ping, `--startups` times (a fresh warm process
each time, never reused), then the pool's refill (its next standby is a fork of its zygote: milliseconds) and a
second deployment started right after it. Target: under 1.5 s and at most 0.2x `mlflow models serve`. The
breakdown of a cold start (a new process) is printed below it: interpreter, imports, then resolve + load + bind.

Inference logging (docs/monitoring.md): mlyard's server again with logging off, on at its defaults (every
request up to 50 per second, 10% past that) and on for every request (`--log-sample-rate 1`), side by side:
p50 of 1-row and 100-row requests (sent to the three in turns), the throughput, and the in-process cost per
request. Targets: p50 at most +0.2 ms, throughput within 10% of logging off; no
log line dropped.

    python benchmarks/serving.py [--requests 300] [--seconds 5] [--startups 2] [--logging-only]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

VENV_BIN = Path(sys.executable).parent
MODEL = "bench-breast-cancer"
THREADS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_store(root: Path) -> tuple[str, object, object]:
    """A fresh SQLite store with version 1 of MODEL; returns (tracking URI, pyfunc model, features)."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)  # first use creates the schema, before any server process opens it
    experiment = client.create_experiment("bench", artifact_location=(root / "artifacts").as_uri())
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(features, target)
    with mlflow.start_run(experiment_id=experiment):
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=MODEL,
            signature=infer_signature(features, model.predict(features)),
            pip_requirements=["scikit-learn", "pandas", "numpy"],
        )
    return uri, mlflow.pyfunc.load_model(f"models:/{MODEL}/1"), features


class Server:
    """One scoring server process in its own process group."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.label, self.argv, self.env, self.port, self.log = label, argv, env, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> float:
        """Start and return seconds to the first 200 from /ping."""
        if ping(self.port):
            raise RuntimeError(f"port {self.port} already answers /ping before {self.label} starts")
        with open(self.log, "ab") as log:
            began = time.perf_counter()
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = began + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited early; see {self.log}")
            if ping(self.port):
                return time.perf_counter() - began
            time.sleep(0.02)
        raise RuntimeError(f"{self.label} not healthy after {timeout} s; see {self.log}")

    def stop(self, timeout: float = 20) -> None:
        """Stop the whole process group (`mlflow models serve` runs uvicorn as a child) and wait
        until every member has exited, so the next start cannot meet the old server on the port."""
        if self.process is None:
            return
        pgid = self.process.pid
        _signal(pgid, signal.SIGTERM)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and (self.process.poll() is None or _signal(pgid, 0)):
            time.sleep(0.05)
        if self.process.poll() is None or _signal(pgid, 0):
            _signal(pgid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        self.process = None


def _signal(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def ping(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


RECONNECTS = [0]  # keep-alive connections the server closed while idle (uvicorn: after 5 s)


def post(conn: http.client.HTTPConnection, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    for attempt in (1, 2):
        try:
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()  # the next request opens a new connection
            RECONNECTS[0] += 1
            print(f"port {conn.port}: connection closed by the server, reconnecting", file=sys.stderr)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def latencies(port: int, body: bytes, count: int, warmup: int = 30) -> list[float]:
    """Sequential requests over one keep-alive connection; the seconds of each after the warm-up."""
    return _latencies_in_turns({"": port}, body, count, warmup)[""]


def throughput(port: int, body: bytes, seconds: float, per_thread_cap: int = 5000) -> tuple[float, int]:
    """Requests per second over THREADS keep-alive clients; returns (rps, failures)."""
    counts = [0] * THREADS
    failures = [0] * THREADS
    start = threading.Barrier(THREADS + 1)
    stop_at: list[float] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        post(conn, body)
        start.wait()
        while counts[i] < per_thread_cap and time.perf_counter() < stop_at[0]:
            status, _ = post(conn, body)
            counts[i] += 1
            failures[i] += status != 200
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + seconds + 60)
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return sum(counts) / (time.perf_counter() - began), sum(failures)


def format_bodies(features, rows: int = 5) -> dict[str, tuple[bytes, str]]:
    part = features.iloc[:rows]
    records = part.to_dict(orient="records")
    return {
        "dataframe_split": (json.dumps({"dataframe_split": part.to_dict(orient="split")}).encode(), "application/json"),
        "dataframe_records": (json.dumps({"dataframe_records": records}).encode(), "application/json"),
        "instances": (json.dumps({"instances": records}).encode(), "application/json"),
        "inputs": (json.dumps({"inputs": records}).encode(), "application/json"),
        "csv": (part.to_csv(index=False).encode(), "text/csv"),
    }


def check_predictions(port: int, model, features) -> dict[str, bool]:
    """Each format's predictions equal model.predict on the same rows (and the 100-row split)."""
    expected = np.asarray(model.predict(features.iloc[:5])).tolist()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    result = {}
    for name, (body, content_type) in format_bodies(features).items():
        status, raw = post(conn, body, content_type)
        result[name] = status == 200 and json.loads(raw)["predictions"] == expected
    conn.close()
    return result


def measure(server: Server, args: argparse.Namespace, bodies: dict[str, bytes], model, features) -> dict:
    startups = []
    for _ in range(args.startups):
        startups.append(server.start())
        server.stop()
    server.start()
    try:
        figures: dict = {"startup": statistics.median(startups)}
        for name, body in bodies.items():
            times = latencies(server.port, body, args.requests)
            figures[f"p50 {name}"] = statistics.median(times)
            figures[f"p99 {name}"] = float(np.percentile(times, 99))
        figures["rps"], figures["failures"] = throughput(server.port, bodies["1 row"], args.seconds)
        figures["predictions"] = check_predictions(server.port, model, features)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        figures["raw 100"] = post(conn, bodies["100 rows"])[1]
        conn.close()
    finally:
        server.stop()
    return figures


def pooled_startups(uri: str, root: Path, count: int) -> tuple[list[float], list[float], list[float]]:
    """Startup to the first 200 from /ping of deployments started from the warm pool (each a fresh process), how
    long after each was healthy the pool's next standby (a fork of the zygote) was ready (a new interpreter took
    seconds), and the startup of a second deployment started right then."""
    from mlyard.serving.limits import thread_pool_env
    from mlyard.serving.pool import WarmPool
    from mlyard.serving.process import Endpoint, start_endpoint

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    pool = WarmPool(sys.executable, {**env, "PYTHONUNBUFFERED": "1", **thread_pool_env(1)}, size=1,
                    log_file=root / "pool.log")  # fmt: skip

    def wait_warm() -> float:
        began, deadline = time.perf_counter(), time.perf_counter() + 300
        while not pool.status().warm and time.perf_counter() < deadline:
            time.sleep(0.002)
        return time.perf_counter() - began

    def start(name: str) -> tuple[Endpoint, float]:
        port = free_port()
        began = time.perf_counter()
        endpoint = start_endpoint(f"models:/{MODEL}/1", port=port, tracking_uri=uri, log_file=root / f"{name}.log",
                                  env=env, cpu=1, pool=pool)  # fmt: skip
        while not ping(port):
            time.sleep(0.005)
        return endpoint, time.perf_counter() - began

    firsts, refills, seconds = [], [], []
    try:
        pool.fill()
        for n in range(count):
            wait_warm()
            first, took = start(f"pool-{n}")
            firsts.append(took)
            refills.append(wait_warm())
            second, took = start(f"pool-{n}-second")
            seconds.append(took)
            if pool.status().cold_starts:
                raise RuntimeError("a pooled start did not use a warm process")
            first.stop()
            second.stop()
    finally:
        pool.close()
    return firsts, refills, seconds


def cold_breakdown(startup: float) -> str:
    """Where a cold start goes: the interpreter, the imports (what a warm process has done), the rest."""
    from mlyard.serving.server import WARM_MODULES

    def wall(code: str) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - began

    bare = min(wall("pass") for _ in range(3))
    # as a scoring process imports them: with the cyclic garbage collector paused (mlyard.imports)
    code = (f"import contextlib, importlib\nfrom mlyard.imports import collector_paused\nwith collector_paused():\n"
            f"  for m in {WARM_MODULES!r}:\n    with contextlib.suppress(ImportError):\n")  # fmt: skip
    imports = statistics.median(wall(code + "        importlib.import_module(m)") for _ in range(3)) - bare
    rest = startup - bare - imports
    # the warm modules are all a warm process imports, more than a cold start of this one model needs
    shown = f"{rest:.2f} s" if rest > 0 else "within the noise (the warm modules alone took as long)"
    return (f"cold start {startup:.2f} s = interpreter {bare:.2f} s + imports {imports:.2f} s (MLflow, pandas, "
            f"scikit-learn, skops, uvicorn: every warm module, median of 3) + resolve, load the model and bind "
            f"{shown}; a warm pool process has done the first two")


def report(mlflow_fig: dict, ours: dict, expected_100: list) -> None:
    ms = 1000.0
    rows: list[tuple[str, str, str, str, str]] = []

    def row(label: str, key: str, scale: float, unit: str, target: Callable[[float], str]) -> None:
        a, b = mlflow_fig[key], ours[key]
        ratio = b / a if a else float("nan")
        rows.append((label, f"{a * scale:.2f} {unit}", f"{b * scale:.2f} {unit}", f"{ratio:.2f}x", target(ratio)))

    row("startup to healthy /ping, cold", "startup", 1, "s", lambda r: _met(r <= 1.0, "<= 1.00x"))
    pooled = ours["startup pooled"]
    ratio = pooled / mlflow_fig["startup"]
    rows.append(("startup, deployment (warm pool)", f"{mlflow_fig['startup']:.2f} s", f"{pooled:.2f} s",
                 f"{ratio:.2f}x", _met(ratio <= 0.2 and pooled < 1.5, "<= 0.20x and < 1.5 s")))  # fmt: skip
    second, refill = ours["startup pooled second"], ours["pool refill"]
    rows.append(("startup, second deployment right after", "", f"{second:.2f} s", "",
                 f"(no target; next standby ready {refill * 1000:.0f} ms after the first was healthy)"))  # fmt: skip
    for size in ("1 row", "100 rows"):
        row(f"p50 latency, {size}", f"p50 {size}", ms, "ms", lambda r: _met(r <= 0.5, "<= 0.50x"))
        row(f"p99 latency, {size}", f"p99 {size}", ms, "ms", lambda r: "(no target)")
    row(f"throughput, {THREADS} clients, 1 row", "rps", 1, "req/s", lambda r: _met(r >= 2.0, ">= 2.00x"))
    same_100 = ours["raw 100"] == mlflow_fig["raw 100"] and json.loads(ours["raw 100"]) == {"predictions": expected_100}
    formats_ok = all(ours["predictions"].values()) and all(mlflow_fig["predictions"].values())
    widths = [max(len(r[i]) for r in [*rows, ("metric", "mlflow", "mlyard", "ratio", "target")]) for i in range(5)]
    header = ("metric", "mlflow", "mlyard", "ratio", "target")
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    print(
        f"failed requests under load: mlflow {mlflow_fig['failures']}, mlyard {ours['failures']}; "
        f"idle keep-alive connections reopened: {RECONNECTS[0]}"
    )
    print(f"predictions per format (mlflow): {mlflow_fig['predictions']}")
    print(f"predictions per format (mlyard): {ours['predictions']}")
    print(ours["breakdown"])
    verdict = "MET" if same_100 and formats_ok else "NOT MET"
    print(f"identical predictions (100 rows byte-equal JSON, every format = model.predict): {verdict}")


def interleaved_latencies(servers: dict[str, Server], body: bytes, count: int, warmup: int = 30) -> dict[str, list]:
    """Sequential requests to each server in turn (A, B, C, A, B, C, ...): a load spike of the machine
    hits every server alike, so the p50s compare."""
    return _latencies_in_turns({label: s.port for label, s in servers.items()}, body, count, warmup)


def _latencies_in_turns(ports: dict[str, int], body: bytes, count: int, warmup: int) -> dict[str, list[float]]:
    conns = {label: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for label, port in ports.items()}
    times: dict[str, list[float]] = {label: [] for label in ports}
    for i in range(warmup + count):
        for label, conn in conns.items():
            began = time.perf_counter()
            status, _ = post(conn, body)
            elapsed = time.perf_counter() - began
            if status != 200:
                raise RuntimeError(f"status {status}")
            if i >= warmup:
                times[label].append(elapsed)
    for conn in conns.values():
        conn.close()
    return times


def measure_logging(servers: dict[str, Server], args: argparse.Namespace, bodies: dict[str, bytes]) -> dict:
    """The servers run side by side and are measured in turns, `--rounds` times, latencies request by request
    (a shared machine's noise hits every variant alike); per variant the median over rounds of the p50s and
    of the throughput, and its inference log counters."""
    for server in servers.values():
        server.start()
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in servers}
    try:
        for _ in range(args.rounds):
            for name, body in bodies.items():
                for label, times in interleaved_latencies(servers, body, args.requests).items():
                    samples[label].setdefault(f"p50 {name}", []).append(statistics.median(times))
            for label, server in servers.items():
                rps, failures = throughput(server.port, bodies["1 row"], args.seconds)
                samples[label].setdefault("rps", []).append(rps)
                samples[label].setdefault("failures", []).append(failures)
        time.sleep(1.5)  # one flush of the writer threads
        figures: dict = {}
        for label, server in servers.items():
            figures[label] = {key: statistics.median(values) for key, values in samples[label].items()}
            figures[label]["failures"] = sum(samples[label]["failures"])
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/health")
            figures[label]["log"] = json.loads(conn.getresponse().read()).get("inference_log")
            conn.close()
    finally:
        for server in servers.values():
            server.stop()
    return figures


def logging_costs(root: Path, bodies: dict[str, bytes]) -> None:
    """In process, without the machine's network noise: what logging adds to the request path (request id
    and `offer`), and the writer thread's CPU per request (`flush`, which shares the GIL with the server)."""
    from mlyard.monitoring.table import InferenceLogger
    from mlyard.serving.app import _request_id

    reply = b'{"predictions": [1]}'
    scope = {"headers": [(b"content-type", b"application/json")]}
    count = 20000
    logger = InferenceLogger(root / "inference-micro", "1", full_below=10**9, queue_limit=count + 1, start=False)
    began = time.perf_counter()
    for _ in range(count):
        rid = _request_id(scope)
        logger.offer(rid.decode("ascii"), time.time(), 1.0, 200, "application/json", bodies["1 row"], reply)
    path_us = (time.perf_counter() - began) / count * 1e6
    began = time.process_time()
    logger.flush()
    flush_us = (time.process_time() - began) / count * 1e6
    print(f"request path: +{path_us:.1f} us per request (request id + queue append); "
          f"writer thread: {flush_us:.1f} us CPU per request (Parquet, batches of {count})")


def report_logging(off: dict, variants: dict[str, dict]) -> None:
    ms = 1000.0
    print(f"logging off: p50 1 row {off['p50 1 row'] * ms:.3f} ms, 100 rows "
          f"{off['p50 100 rows'] * ms:.3f} ms, {off['rps']:.0f} req/s")
    for label, fig in variants.items():
        deltas = {size: (fig[f"p50 {size}"] - off[f"p50 {size}"]) * ms for size in ("1 row", "100 rows")}
        ratio = fig["rps"] / off["rps"]
        worst = max(deltas.values())
        log = fig["log"] or {}
        print(f"  {label}: p50 {deltas['1 row']:+.3f} ms (1 row), {deltas['100 rows']:+.3f} ms (100 rows) "
              f"[{_met(worst <= 0.2, '<= +0.2 ms')}]; throughput {fig['rps']:.0f} req/s = {ratio:.2f}x "
              f"[{_met(ratio >= 0.9, '>= 0.90x')}]; failures {fig['failures']}")
        print(f"    log: seen {log.get('seen')}, written {log.get('written')}, sampled out {log.get('sampled_out')}, "
              f"dropped {log.get('dropped_full', 0) + log.get('dropped_error', 0)}")


def _met(ok: bool, target: str) -> str:
    return f"{target} {'MET' if ok else 'NOT MET'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the throughput test")
    parser.add_argument("--startups", type=int, default=2, help="startups measured per server (median)")
    parser.add_argument("--logging-only", action="store_true", help="only the inference logging comparison")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the inference logging comparison")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlyard-bench-serving-"))
    servers: list[Server] = []
    try:
        uri, model, features = prepare_store(root)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow_port, our_port = free_port(), free_port()
        mlflow_argv = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1"]
        mlflow_argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)]
        our_argv = [sys.executable, "-m", "mlyard.serving", "--model-uri", f"models:/{MODEL}/1"]
        our_argv += ["--host", "127.0.0.1", "--port", str(our_port), "--tracking-uri", uri]
        servers = [
            Server("mlflow models serve", mlflow_argv, env, mlflow_port, root / "mlflow.log"),
            Server("mlyard.serving", our_argv, env, our_port, root / "mlyard.log"),
        ]
        bodies = {
            size: json.dumps({"dataframe_split": features.iloc[:n].to_dict(orient="split")}).encode()
            for size, n in (("1 row", 1), ("100 rows", 100))
        }
        if not args.logging_only:
            figures = [measure(server, args, bodies, model, features) for server in servers]
            firsts, refills, seconds = pooled_startups(uri, root, args.startups)
            figures[1]["startup pooled"] = statistics.median(firsts)
            figures[1]["pool refill"] = statistics.median(refills)
            figures[1]["startup pooled second"] = statistics.median(seconds)
            figures[1]["breakdown"] = cold_breakdown(figures[1]["startup"])
            expected_100 = np.asarray(model.predict(features.iloc[:100])).tolist()
            print(
                f"\nmodel: LogisticRegression, breast cancer (30 double columns); {os.cpu_count()} CPUs; "
                f"{args.requests} requests per latency figure, {args.seconds:.0f} s throughput, "
                f"median of {args.startups} startups; both servers at their defaults (1 process)\n"
            )
            report(figures[0], figures[1], expected_100)
        ports = [free_port() for _ in range(3)]
        base_argv = [sys.executable, "-m", "mlyard.serving", "--model-uri", f"models:/{MODEL}/1", "--host",
                     "127.0.0.1", "--tracking-uri", uri]  # fmt: skip
        runs = {
            "off": [],
            "on, defaults": ["--inference-log", str(root / "inference-defaults")],
            "on, every request": ["--inference-log", str(root / "inference-all"), "--log-sample-rate", "1"],
        }
        side_by_side = {
            label: Server(f"mlyard.serving, logging {label}", [*base_argv, "--port", str(port), *extra], env, port,
                          root / f"logging-{n}.log")
            for n, ((label, extra), port) in enumerate(zip(runs.items(), ports, strict=True))
        }  # fmt: skip
        servers += list(side_by_side.values())
        logging_figures = measure_logging(side_by_side, args, bodies)
        print(f"\ninference logging: {args.rounds} rounds, in turns; medians")
        report_logging(logging_figures.pop("off"), logging_figures)
        logging_costs(root, bodies)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.phase import machine_phase

    with machine_phase():
        main()
