"""`mlyard quickstart --exit --json` on a fresh home: the total, the seconds to a scored endpoint and each
step, side by side with the issue's target (issue 15: a scored endpoint in under 30 s).

Also prints the CPU seconds of the quickstart process and the processes reaped under it (a lower bound: a
step's CPU counts only when every process between it and the quickstart waited for its child).

    python benchmarks/quickstart.py [--runs 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.phase import machine_phase
from tests.conftest import free_port

TARGET = 30.0  # seconds from nothing to a scored endpoint, issue 15


def quickstart_once(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLYARD_URL", "MLYARD_TOKEN", "MLYARD_HOME")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlyard", "quickstart", "--home", str(tmp / "home"), "--port", str(free_port()),
         "--exit", "--json"],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"quickstart failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    # a quickstart older than the figure (to compare before/after): the total without the drift demo
    summary.setdefault("seconds_to_scored_endpoint", summary["seconds"] - summary["step_seconds"]["drift_demo"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**summary, "wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="fresh homes to measure (median)")
    runs = max(1, min(parser.parse_args().runs, 10))
    samples = []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-quickstart-"))
        try:
            samples.append(quickstart_once(tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def median(key: str) -> float:
        return statistics.median(float(s[key]) for s in samples)

    print(f"mlyard quickstart on a fresh home, {runs} run(s), {os.cpu_count()} CPUs; medians in seconds")
    print(f"{'measure':<58}{'seconds':>10}")
    scored = median("seconds_to_scored_endpoint")
    print(f"{f'to a scored endpoint (target < {TARGET:g} s)':<58}{scored:>10.2f}")
    print(f"{'total, with the drift demo':<58}{median('seconds'):>10.2f}")
    print(f"{'CPU of quickstart and the processes reaped under it':<58}{median('cpu'):>10.2f}")
    for step in samples[0]["step_seconds"]:
        print(f"{'  ' + step:<58}{statistics.median(s['step_seconds'][step] for s in samples):>10.2f}")
    print(f"target under {TARGET:g} s to a scored endpoint: {'met' if scored < TARGET else 'NOT met'} ({scored:.2f} s)")


if __name__ == "__main__":
    with machine_phase():
        main()
