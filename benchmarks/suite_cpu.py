"""Where the test suite's CPU goes: each test's CPU with every process it started, by file, directory and kind.

    python benchmarks/suite_cpu.py [PYTEST ARGS...]     # default: -n 3 (the README's command)

Runs `python -m pytest -p benchmarks.suite_cpu ARGS` from the project's root with this module as a plugin of
every xdist worker: at each test's start and end the worker adds up the CPU (utime+stime+cutime+cstime of
/proc/<pid>/stat) of itself and of every live process under it, so a test is charged the CPU of the servers,
agents, steps and scoring processes it started, and of the session's shared servers while it ran. Meanwhile this
script samples the machine's busy share (/proc/stat) and every process under the run every 0.5 s, to split the CPU
by kind of process (processes shorter than a sample are missed there; the per-test figures include them once
reaped). Then it prints the wall time, the run's CPU (its reaped processes', as `time` counts it), how busy the
cores were, and the heaviest directories, files, tests and kinds of process. Nothing is asserted: it measures.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_ENV = "MLYARD_SUITE_CPU_DIR"  # where the workers write their lines (set by the script)
DUMP_ENV = "MLYARD_SUITE_CPU_DUMP"  # a file for every sampled process as JSON lines (pid, parent, kind, CPU s, ...)
# (and FILE.tests for every test: [node id, wall s, CPU s])
TICK = os.sysconf("SC_CLK_TCK")
KINDS = (  # the first that appears in a command line names its kind
    ("mlyard.serving", "scoring process or zygote"), ("tracking_server", "environment MLflow server"),
    ("mlyard server", "mlyard server"), ("tests.cli_fork", "forked CLI call or server (tests/cli_fork.py)"),
    ("local_agents", "local agent"), ("warm_stub", "warm step sandbox"), ("registry.py", "template step"),
    ("notebooks/train.py", "template step"), ("pytest tests/", "template step"), ("mlops/", "template step"),
    (".batch --model", "template step"), ("infra create-project", "project creator step"), ("chromium", "chromium"),
    ("xdist", "test worker"), ("exec(eval(sys.stdin", "test worker"), ("git", "git"), ("postgres", "postgres"),
)  # fmt: skip


PLACED = ("template step", "scoring process or zygote", "environment MLflow server", "warm step sandbox", "local agent",
          "project creator step")
OTHER_CHARS = 110


def _stat(pid: str) -> tuple[int, int, int] | None:
    """(parent pid, CPU ticks of the process and its reaped children, own ticks) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = int(fields[11]) + int(fields[12])
    return int(fields[1]), own + int(fields[13]) + int(fields[14]), own


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every live process under it, with their reaped children."""
    procs = {int(pid): found for pid in os.listdir("/proc") if pid.isdigit() and (found := _stat(pid))}
    total = 0
    for pid, (_, ticks, _) in procs.items():
        parent, depth = pid, 0
        while parent and parent != root and depth < 64:
            parent, depth = procs.get(parent, (0, 0, 0))[0], depth + 1
        total += ticks if parent == root else 0
    return total / TICK


# -- the plugin (in each xdist worker) ------------------------------------------------------------------------------
_started: dict[str, tuple[float, float]] = {}
_scans = [0.0]  # this worker's CPU in its own /proc scans (`_tree_cpu`): part of the "test worker" kind's figure


def _tree_cpu() -> float:
    """`tree_cpu` of this worker, adding the scan's own CPU to `_scans` (it reads every process of the machine)."""
    began = time.thread_time()
    try:
        return tree_cpu(os.getpid())
    finally:
        _scans[0] += time.thread_time() - began


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    if os.environ.get(OUT_ENV) and os.environ.get("PYTEST_XDIST_WORKER"):
        _started[nodeid] = (time.time(), _tree_cpu())


def pytest_runtest_logreport(report: Any) -> None:
    if report.when != "teardown" or report.nodeid not in _started:
        return
    began, cpu = _started.pop(report.nodeid)
    line = json.dumps([report.nodeid, time.time() - began, _tree_cpu() - cpu])
    with open(Path(os.environ[OUT_ENV]) / f"{os.environ['PYTEST_XDIST_WORKER']}.jsonl", "a") as fh:
        fh.write(line + "\n")


def pytest_sessionfinish() -> None:
    if os.environ.get(OUT_ENV) and os.environ.get("PYTEST_XDIST_WORKER"):
        (Path(os.environ[OUT_ENV]) / f"{os.environ['PYTEST_XDIST_WORKER']}.scans").write_text(str(_scans[0]))


# -- the script -----------------------------------------------------------------------------------------------------
def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _kind(command: str) -> str:
    return next((kind for mark, kind in KINDS if mark in command), "other")


MARK = b"MLYARD_AGENT_MARK="  # the home of the server whose processes these are (mlyard.background.local_agents)
TMP_FOLDER = re.compile(r"/pytest-\d+/(?:popen-gw\d+/)?([^/\s]+)")  # a test's tmp_path: its name, e.g. test_x0


def _where(pid: int, procs: dict[int, tuple[int, int, int]]) -> str:
    """The pytest temporary folder a process or its nearest ancestor works in (cwd or command line: `server0` is a
    worker's session server, `test_quickstart0` a test's own), or "-"."""
    for _ in range(64):
        found = TMP_FOLDER.search(_command(pid))
        with contextlib.suppress(OSError):
            found = found or TMP_FOLDER.search(os.readlink(f"/proc/{pid}/cwd"))
        with contextlib.suppress(OSError):  # a server's mark (the MLflow servers' zygote: its cwd is the sockets')
            mark = next((v for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if v.startswith(MARK)), b"")
            found = found or TMP_FOLDER.search(mark.decode(errors="replace"))
        if found:
            return found.group(1)
        pid = procs.get(pid, (0, 0, 0))[0]
        if pid <= 1:
            break
    return "-"


class Sampler(threading.Thread):
    """Every 0.5 s: the machine's busy share, and the CPU of each process under `root` by kind."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.done = root, threading.Event()
        # (pid, start time) -> [kind, CPU ticks when last seen, command line, temporary folder of the test (PLACED)]
        self.seen: dict[tuple[int, str], list[Any]] = {}
        self.busy: list[float] = []

    def run(self) -> None:
        previous = None
        while not self.done.wait(0.5):
            with open("/proc/stat") as fh:
                values = [int(v) for v in fh.readline().split()[1:]]
            idle, total = values[3] + values[4], sum(values)
            if previous is not None and total > previous[1]:
                self.busy.append(1 - (idle - previous[0]) / (total - previous[1]))
            previous = (idle, total)
            procs = {int(pid): found for pid in os.listdir("/proc") if pid.isdigit() and (found := _stat(pid))}
            for pid, (_, _, own) in procs.items():
                parent, depth = pid, 0
                while parent and parent != self.root and depth < 64:
                    parent, depth = procs.get(parent, (0, 0, 0))[0], depth + 1
                if parent != self.root:
                    continue
                try:
                    start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
                except OSError:
                    continue
                if (pid, start) not in self.seen:
                    command = _command(pid)
                    kind = _kind(command)
                    where = _where(pid, procs) if kind in PLACED else ""
                    self.seen[(pid, start)] = [kind, own, command, where, procs[pid][0]]
                self.seen[(pid, start)][1] = own

    def by_kind(self) -> collections.Counter[str]:
        kinds: collections.Counter[str] = collections.Counter()
        for kind, ticks, *_ in self.seen.values():
            kinds[kind] += ticks / TICK
        return kinds

    def placed(self) -> dict[tuple[str, str], list[float]]:
        """(kind, test folder) -> [CPU s, processes] of the PLACED kinds."""
        found: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0])
        for kind, ticks, _, where, _ in self.seen.values():
            if kind in PLACED:
                entry = found[(kind, where)]
                entry[0], entry[1] = entry[0] + ticks / TICK, entry[1] + 1
        return found

    def others(self) -> collections.Counter[str]:
        """CPU s of the "other" processes by their command line's first OTHER_CHARS characters."""
        found: collections.Counter[str] = collections.Counter()
        for kind, ticks, command, *_ in self.seen.values():
            if kind == "other":
                found[command[:OTHER_CHARS]] += ticks / TICK
        return found


def main() -> None:
    args = sys.argv[1:] or ["-n", "3"]
    out = Path(tempfile.mkdtemp(prefix="mlyard-suite-cpu-"))
    env = {**os.environ, OUT_ENV: str(out)}
    began = time.monotonic()
    before = os.times()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "benchmarks.suite_cpu"]
    run = subprocess.Popen([*pytest, *args], cwd=ROOT, env=env)
    sampler = Sampler(run.pid)
    sampler.start()
    code = run.wait()
    sampler.done.set()
    wall = time.monotonic() - began
    after = os.times()
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    rows = [json.loads(line) for path in out.glob("*.jsonl") for line in path.read_text().splitlines()]
    busy, cores = (sum(sampler.busy) / len(sampler.busy) if sampler.busy else 0.0), os.cpu_count() or 1
    print(f"\npytest exited {code}: {len(rows)} tests, {wall:.0f} s of wall time, {cpu:.0f} s of CPU (the run and its "
          f"reaped processes), {cores} cores {busy:.0%} busy on average ({busy * wall * cores:.0f} s of CPU "
          "machine-wide)")
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for nodeid, seconds, used in rows:
        entry = files[nodeid.split("::")[0]]
        entry[0], entry[1], entry[2] = entry[0] + used, entry[1] + seconds, entry[2] + 1
    folders: collections.Counter[str] = collections.Counter()
    for name, (used, _, _) in files.items():
        folders["/".join(name.split("/")[:2])] += used
    print(f"\nCPU charged to tests: {sum(r[2] for r in rows):.0f} s; by directory:")
    print("  " + ", ".join(f"{name} {used:.0f}" for name, used in folders.most_common()))
    print("\nheaviest files (CPU s, wall s, tests):")
    for name, (used, seconds, count) in sorted(files.items(), key=lambda kv: -kv[1][0])[:20]:
        print(f"  {used:7.1f} {seconds:7.1f} {count:5d}  {name}")
    print("\nheaviest tests (CPU s, wall s):")
    for nodeid, seconds, used in sorted(rows, key=lambda r: -r[2])[:15]:
        print(f"  {used:7.1f} {seconds:7.1f}  {nodeid}")
    print("\nby kind of process (sampled every 0.5 s; shorter processes are missed here):")
    for kind, used in sampler.by_kind().most_common():
        print(f"  {used:7.1f}  {kind}")
    scans = sum(float(path.read_text()) for path in out.glob("*.scans"))
    print(f"  (of the test workers' CPU, {scans:.1f} s were this script's own scans of /proc at each test's start and "
          "end: not there in a plain run)")
    print("\nwhere (the test's temporary folder; server0: a worker's session server) of the heavy kinds "
          "(CPU s, processes):")
    for (kind, where), (used, count) in sorted(sampler.placed().items(), key=lambda kv: -kv[1][0])[:30]:
        print(f"  {used:7.1f} {count:4.0f}  {kind:28s} {where}")
    print(f"\nheaviest \"other\" processes by command (first {OTHER_CHARS} characters):")
    for command, used in sampler.others().most_common(15):
        print(f"  {used:7.1f}  {command}")
    if os.environ.get(DUMP_ENV):
        with open(os.environ[DUMP_ENV], "w") as fh:
            for (pid, _), (kind, ticks, command, where, parent) in sampler.seen.items():
                fh.write(json.dumps({"pid": pid, "parent": parent, "kind": kind, "cpu": ticks / TICK, "where": where,
                                     "command": command}) + "\n")  # fmt: skip
        with open(os.environ[DUMP_ENV] + ".tests", "w") as fh:  # and every test: node id, wall s, CPU s
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    sys.exit(code)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.phase import machine_phase

    with machine_phase():
        main()
