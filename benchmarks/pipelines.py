"""Pipeline service figures, on a real server with its local agents.

1. push-to-run-started latency: 50 pushes, each triggering a one-step pipeline; from the push
   event being recorded to the job being claimed by an agent (server timestamps), p50 and p95.
2. wall time of a one-step `script: "true"` pipeline from queue to done (median of 10), server-side
   (queued_at -> job finished_at) and client-side (POST -> the client sees it final), with a breakdown
   of where the time goes (server timestamps of the run, its job and its steps) and the CPU time the
   server, its local agents and the steps' processes in their sandboxes spent per run.
3. 200 runs queued at once on the 2 local agents: runs per minute, and that none is lost.

Targets (issue 15): push-to-start p50 < 100 ms; one-step pipeline < 0.2 s, server and client;
200 queued runs > 200 runs/min, all succeeded.

    python benchmarks/pipelines.py [--pushes 50] [--burst 200] [--single 10]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.phase import machine_phase
from tests.conftest import Server, free_port, git_env, mlyard

PIPELINE = 'trigger:\n  branches:\n    include: [master]\nsteps:\n- script: "true"\n'
FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def wait_final(server: Server, run_id: int, timeout: float = 120) -> dict:
    """The run once it has ended: `GET /runs/{id}?wait=S` answers as soon as it ends (no polling)."""
    deadline = time.monotonic() + timeout
    with server.client() as api:
        while True:
            asked = time.monotonic()
            doc = api.get(f"/api/v1/runs/{run_id}", params={"wait": 30}).json()
            if doc["state"] in FINAL or time.monotonic() > deadline:
                return doc
            if time.monotonic() - asked < 1:  # a server without `wait` (before issue 15): poll every 20 ms
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
    parser.add_argument("--single", type=int, default=10, help="one-step runs timed one after the other")
    args = parser.parse_args()
    adopt_orphans()
    tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-pipelines-"))
    try:
        home, port = tmp / "home", free_port()
        token = json.loads(mlyard("init", "--port", str(port), "--json", home=home).stdout)["token"]
        server = Server(home=home, port=port, token=token)
        server.start()
        try:
            bench(server, tmp, args.pushes, args.burst, args.single)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(server: Server, tmp: Path, pushes: int, burst: int, single: int) -> None:
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

    walls, server_walls, phases = [], [], []
    cpu_before = cpu_seconds(server)
    for _ in range(single):
        t0, posted = time.perf_counter(), time.time()
        with server.client() as api:
            queued = api.post("/api/v1/pipelines/bench-ci/runs", json={}).json()
        answered = time.perf_counter() - t0
        doc = wait_final(server, queued["id"])
        walls.append(time.perf_counter() - t0)
        seen = time.time()
        job_finished = ts(doc["stages"][0]["jobs"][0]["finished_at"])
        server_walls.append(ts(doc["stages"][0]["jobs"][0]["finished_at"]) - ts(doc["queued_at"]))
        phases.append({
            "client: POST /runs until answered (commit resolved, parameters checked)": answered,
            "client: POST sent -> run row queued (server clock)": ts(doc["queued_at"]) - posted,
            **breakdown(doc),
            "job finished -> run finished (scheduler)": ts(doc["finished_at"]) - job_finished,
            "run finished -> client has it (GET ?wait= woken)": seen - ts(doc["finished_at"]),
        })  # fmt: skip
    cpu_single = {name: (cpu_seconds(server)[name] - cpu_before[name]) / max(single, 1) for name in cpu_before}

    cpu_before = cpu_seconds(server)
    t0 = time.perf_counter()
    with server.client() as api:
        ids = [api.post("/api/v1/pipelines/bench-ci/runs", json={}).json()["id"] for _ in range(burst)]
    results = [wait_final(server, run_id, timeout=1800)["state"] for run_id in ids]
    elapsed = time.perf_counter() - t0
    ok = sum(r == "succeeded" for r in results)
    cpu_burst = {name: (cpu_seconds(server)[name] - cpu_before[name]) / max(burst, 1) for name in cpu_before}

    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
    row = lambda label, value, target="": print(f"{label:<52}{value:>12}{target:>12}")  # noqa: E731
    row("measure", "value", "target")
    if latencies:
        row("push-to-run-started p50 (ms)", f"{statistics.median(latencies) * 1000:.0f}", "< 100")
        row("push-to-run-started p95 (ms)", f"{q[18] * 1000:.0f}")
    if walls:
        row("one-step pipeline, queue to done (s, client)", f"{statistics.median(walls):.3f}", "< 0.2")
        row("one-step pipeline, queue to done (s, server)", f"{statistics.median(server_walls):.3f}", "< 0.2")
    row(f"{burst} runs queued at once, 2 local agents: runs/min", f"{burst / elapsed * 60:.0f}", "> 200")
    row(f"{burst} runs queued at once: succeeded", ok, burst)
    if phases:
        print("\nwhere a one-step run's time goes (median over the runs, ms, server timestamps):")
        for name in phases[0]:
            print(f"  {name:<72}{statistics.median(p[name] for p in phases) * 1000:>8.1f}")
    print("\nCPU seconds per run (user+sys; agents with their bwrap processes; steps: the processes in the step")
    print("sandboxes (sh, git, the script), which no process of the server's tree waits for):")
    print(f"  {'':<30}{'server':>10}{'agents':>10}{'steps':>10}{'total':>10}")
    for label, cpu in (("one-step runs, one at a time", cpu_single), (f"{burst} runs queued at once", cpu_burst)):
        if label.startswith("one") and not walls:
            continue
        total = cpu["server"] + cpu["agents"] + cpu["steps"]
        print(f"  {label:<30}{cpu['server']:>10.3f}{cpu['agents']:>10.3f}{cpu['steps']:>10.3f}{total:>10.3f}")


PHASES = (
    "queued -> run started (YAML compiled, rows created)",
    "run started -> job claimed by an agent",
    "job claimed -> first step started (agent sets up the job)",
    "checkout step (git fetch of the commit, sandboxed)",
    "between the steps",
    "script step (`true`, sandboxed)",
    "last step finished -> job finished (clean-up, report)",
)


def breakdown(doc: dict) -> dict[str, float]:
    """Where the time of one finished one-step run went, from the server's timestamps."""
    job = doc["stages"][0]["jobs"][0]
    steps = job["steps"]
    first, last = steps[0], steps[-1]
    first_end = ts(first["started_at"]) + first["duration_seconds"]  # steps carry a duration (ms precision)
    last_end = ts(last["started_at"]) + last["duration_seconds"]
    values = (
        ts(doc["started_at"]) - ts(doc["queued_at"]),
        ts(job["started_at"]) - ts(doc["started_at"]),
        ts(first["started_at"]) - ts(job["started_at"]),
        first["duration_seconds"],
        ts(last["started_at"]) - first_end,
        last["duration_seconds"],
        ts(job["finished_at"]) - last_end,
    )
    return dict(zip(PHASES, values, strict=True))


def adopt_orphans() -> None:
    """Make this process the reaper of the server's orphaned descendants (PR_SET_CHILD_SUBREAPER) and reap
    the sandboxes' namespace inits among them in a thread: a sandboxed step's processes live in a PID
    namespace whose init (a `bwrap`) outlives bwrap's first process (the agent's child) for an instant, so
    no process of the server's tree waits for them; without this their CPU would go to the machine's init
    and count nowhere. Other children (ours, the server's orphans) are left to whoever waits for them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        return
    me = psutil.Process()

    def reap() -> None:
        while True:
            time.sleep(0.05)
            for child in me.children():
                try:
                    if child.status() == psutil.STATUS_ZOMBIE and child.name() == "bwrap":
                        os.waitpid(child.pid, 0)  # its CPU and its namespace's now count in RUSAGE_CHILDREN
                except (psutil.Error, ChildProcessError):
                    continue

    threading.Thread(target=reap, daemon=True).start()


def cpu_seconds(server: Server) -> dict[str, float]:
    """CPU time (user+sys) of the server process with the git processes it ran (compile, fetches), of its
    local agents with their bwrap processes, and of the steps' processes in their sandboxes (orphans reaped by
    this process, see adopt_orphans)."""
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    own = proc.cpu_times()
    agents = 0.0
    for child in proc.children():
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        agents += times.user + times.system + times.children_user + times.children_system
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # adopted namespace inits (and setup's git commands)
    return {"server": own.user + own.system + own.children_user + own.children_system, "agents": agents,
            "steps": reaped.ru_utime + reaped.ru_stime}  # fmt: skip

if __name__ == "__main__":
    with machine_phase():
        main()
