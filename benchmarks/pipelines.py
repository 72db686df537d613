"""Pipeline service figures, on a real server with its local agents.

1. push-to-run-started latency: 50 pushes, each triggering a one-step pipeline; from the push
   event being recorded to the job being claimed by an agent (server timestamps), p50 and p95.
2. wall time of a one-step `script: "true"` pipeline from queue to done (median of 10).
3. 200 runs queued at once: runs per minute, and that none is lost.

Targets: push-to-start p50 < 100 ms; one-step pipeline < 1 s; 200 runs all finished.

    python benchmarks/pipelines.py [--pushes 50] [--burst 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import Server, free_port, git_env, mlyard

PIPELINE = 'trigger:\n  branches:\n    include: [master]\nsteps:\n- script: "true"\n'
FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def wait_final(server: Server, run_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with server.client() as api:
        while True:
            doc = api.get(f"/api/v1/runs/{run_id}").json()
            if doc["state"] in FINAL or time.monotonic() > deadline:
                return doc
            time.sleep(0.02)


def wait_run_of(server: Server, sha: str, timeout: float = 60) -> int:
    """The id of the run of commit `sha` (runs are triggered asynchronously, through the outbox)."""
    deadline = time.monotonic() + timeout
    with server.client() as api:
        while True:
            runs = api.get("/api/v1/runs", params={"pipeline": "bench-ci", "limit": 1}).json()
            if (runs and runs[0]["source_version"] == sha) or time.monotonic() > deadline:
                return int(runs[0]["id"])
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-pipelines-"))
    try:
        home, port = tmp / "home", free_port()
        token = json.loads(mlyard("init", "--port", str(port), "--json", home=home).stdout)["token"]
        server = Server(home=home, port=port, token=token)
        server.start()
        try:
            bench(server, tmp, args.pushes, args.burst)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(server: Server, tmp: Path, pushes: int, burst: int) -> None:
    env = git_env(tmp)
    (tmp / "gitconfig").write_text("[init]\n\tdefaultBranch = master\n")
    work = tmp / "work"
    with server.client() as api:
        api.post("/api/v1/repos", json={"name": "bench"}).raise_for_status()
    subprocess.run(["git", "clone", "-q", server.remote("bench"), str(work)], env=env, check=True)
    (work / "ci.yml").write_text(PIPELINE)
    git = lambda *a: subprocess.run(["git", *a], cwd=work, env=env, check=True, capture_output=True)  # noqa: E731
    git("add", ".")
    git("commit", "-qm", "pipeline")
    git("push", "-q", "origin", "master")
    with server.client() as api:
        api.post("/api/v1/pipelines", json={"name": "bench-ci", "repo": "bench", "yaml": "ci.yml"}).raise_for_status()

    latencies = []
    for i in range(pushes):
        (work / "f.txt").write_text(str(i))
        git("add", "f.txt")
        git("commit", "-qm", f"push {i}")
        git("push", "-q", "origin", "master")
        sha = git("rev-parse", "HEAD").stdout.decode().strip()
        with server.client() as api:
            event = api.get("/api/v1/repos/bench/events", params={"limit": 1000}).json()[-1]
        doc = wait_final(server, wait_run_of(server, sha))
        started = doc["stages"][0]["jobs"][0]["started_at"]
        latencies.append(ts(started) - ts(event["created_at"]))

    walls, server_walls = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        with server.client() as api:
            queued = api.post("/api/v1/pipelines/bench-ci/runs", json={}).json()
        doc = wait_final(server, queued["id"])
        walls.append(time.perf_counter() - t0)
        server_walls.append(ts(doc["stages"][0]["jobs"][0]["finished_at"]) - ts(doc["queued_at"]))

    t0 = time.perf_counter()
    with server.client() as api:
        ids = [api.post("/api/v1/pipelines/bench-ci/runs", json={}).json()["id"] for _ in range(burst)]
    results = [wait_final(server, run_id, timeout=1800)["state"] for run_id in ids]
    elapsed = time.perf_counter() - t0
    ok = sum(r == "succeeded" for r in results)

    q = statistics.quantiles(latencies, n=20)
    print(f"{'measure':<44}{'value':>12}{'target':>12}")
    print(f"{'push-to-run-started p50 (ms)':<44}{statistics.median(latencies) * 1000:>12.0f}{'< 100':>12}")
    print(f"{'push-to-run-started p95 (ms)':<44}{q[18] * 1000:>12.0f}{'':>12}")
    print(f"{'one-step pipeline, queue to done (s, client)':<44}{statistics.median(walls):>12.3f}{'< 1':>12}")
    print(f"{'one-step pipeline, queue to done (s, server)':<44}{statistics.median(server_walls):>12.3f}{'':>12}")
    print(f"{f'{burst} runs queued at once: runs per minute':<44}{burst / elapsed * 60:>12.0f}{'':>12}")
    print(f"{f'{burst} runs queued at once: succeeded':<44}{ok:>12}{burst:>12}")


if __name__ == "__main__":
    main()
