"""Server start-up: what every user (and every test server) pays before `mlyard server` answers /health.

On a fresh home each round: `mlyard init`, then `mlyard server` (the product's defaults) until /health
answers, with the wall time and the CPU (user + system) of each process, by kind (the server, the MLflow server
of `dev`, forked by the zygote it starts before its imports, its local agents, the warm scoring process) at /health and
once the start-up's background work is done ("settled": dev's MLflow server ready; on a fresh home the warm scoring
process waits for a registered model, docs/serving.md);
and, in separate processes, `import mlyard.app` (does it import MLflow?) and the phases of `create_app` on an
initialised home. Medians of `--rounds` rounds. The package is byte-compiled first, as `pip install` does.

    python benchmarks/server_start.py [--rounds 3]

CPU is the figure to compare on a shared machine (wall times there depend on the other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.cli_startup import byte_compile
from benchmarks.phase import machine_phase
from tests.conftest import Server, free_port

# Phases of create_app, timed in a process of their own (CPU of this process, seconds).
PHASES = r"""
import json, sys, time
from pathlib import Path
clock = time.process_time
figures = {}
began = clock()
import mlyard.app
figures["import mlyard.app"] = clock() - began
figures["mlflow imported"] = float("mlflow" in sys.modules)
from mlyard.db.engine import upgrade
from mlyard.services import environment_groups
from mlyard.services.platform import open_platform
from mlyard.settings import Settings
settings = Settings.load(Path(sys.argv[1]))
began = clock()
upgrade(settings.db_url)
figures["migrations (at head)"] = clock() - began
figures["alembic imported"] = float("alembic" in sys.modules)
began = clock()
platform = open_platform(settings)
environment_groups.sync_all(platform)
figures["variable groups"] = clock() - began
began = clock()
mlyard.app.create_app(settings, agents=0)
figures["create_app (all)"] = clock() - began
print(json.dumps(figures))
"""


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of a child process, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=300)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


# The processes of a server's tree, by what they run (the MLflow servers: their zygote and its forks).
KINDS = (("mlyard.registry.tracking_server", "MLflow server"), ("mlyard.serving", "scoring pool"),
         ("mlyard.background.local_agents", "local agents"), ("mlyard server", "server"))  # fmt: skip


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU (user + system) of the server and its children so far, by kind, and their total."""
    found = {name: 0.0 for _, name in KINDS}
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            command, times = " ".join(proc.cmdline()), proc.cpu_times()
        except psutil.Error:
            continue
        kind = next((name for mark, name in KINDS if mark in command), "other")
        found[kind] = found.get(kind, 0.0) + times.user + times.system
    found["total"] = sum(found.values())
    return found


def settle(server: Server, timeout: float = 180) -> float:
    """Wait until the start-up's background work is done (the MLflow server of dev ready; the warm scoring
    process warm, or waiting for something to serve, as on a fresh home: it starts once a model is registered);
    the time it happened."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while time.monotonic() < deadline:
            pool = client.get("/health").json().get("serving_pool") or {}
            waits = pool.get("started") is False
            if "registry warm" in server.log.read_text(errors="replace") and (pool.get("warm") or waits):
                return time.perf_counter()
            time.sleep(0.25)  # each poll is a request to the server: its CPU counts in the figures
    raise SystemExit("the server's start-up did not settle (registry warm-up and scoring pool)")


def one_round(tmp: Path) -> dict[str, float]:
    home, port = tmp / "home", free_port()
    env = {**os.environ, "MLYARD_HOME": str(home)}
    figures: dict[str, float] = {}
    wall, cpu, out = run([sys.executable, "-m", "mlyard", "init", "--port", str(port), "--json"], env)
    figures.update({"init wall": wall, "init cpu": cpu})
    token = json.loads(out)["token"]
    # The product's defaults (tests/conftest.py turns the warm processes off for the suite).
    defaults = {"MLYARD_REGISTRY_WARM": "1", "MLYARD_SERVING_WARM_POOL": "1"}
    server = Server(home=home, port=port, token=token, env=defaults)
    began = time.perf_counter()
    server.start(timeout=120)
    figures["server to /health wall"] = time.perf_counter() - began
    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    figures["server to /health cpu"] = times.user + times.system
    figures.update({f"at /health cpu: {k}": v for k, v in tree_cpu(server.proc.pid).items()})
    try:
        figures["settled wall"] = settle(server) - began
        figures.update({f"settled cpu: {k}": v for k, v in tree_cpu(server.proc.pid).items()})
    finally:
        server.stop()
    wall, cpu, _ = run([sys.executable, "-c", "import mlyard.app"], env)
    figures.update({"import mlyard.app wall": wall, "import mlyard.app cpu": cpu})
    _, _, out = run([sys.executable, "-c", PHASES, str(home)], env)
    figures.update({f"phase: {key}": value for key, value in json.loads(out).items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    byte_compile()
    samples = []
    for n in range(args.rounds):
        tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-start-"))
        try:
            samples.append(one_round(tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in samples[-1].items()), file=sys.stderr)
    print(f"server start-up: {args.rounds} fresh homes, medians (CPU = user + system of that process)")
    print(f"{'measure':<40}{'median (s)':>12}")
    for key in samples[0]:
        value = statistics.median(s[key] for s in samples)
        shown = ("yes" if value else "no") if key.endswith("imported") else f"{value:.2f}"
        print(f"{key:<40}{shown:>12}")


if __name__ == "__main__":
    with machine_phase():
        main()
