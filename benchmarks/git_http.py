"""Clone and push through mlyard's git smart HTTP versus `git clone file://` of the same bare repo.

Generates a repository of 2,000 files and 200 commits, starts a real server on a free loopback
port with a temporary home, and prints medians and ratios. Target: clone through the server
within 1.5x of file://.

    python benchmarks/git_http.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.phase import machine_phase
from tests.conftest import Server, free_port, git_env, mlyard

FILES, COMMITS = 2000, 200


def generate(path: Path, env: dict[str, str]) -> None:
    """A repo of FILES files changed over COMMITS commits, built with git fast-import."""
    subprocess.run(["git", "init", "-q", "-b", "master", str(path)], env=env, check=True)
    lines: list[str] = []
    per_commit = FILES // COMMITS
    for c in range(COMMITS):
        lines.append("commit refs/heads/master")
        lines.append(f"committer Bench <bench@example.com> {1700000000 + c} +0000")
        msg = f"commit {c}"
        lines.append(f"data {len(msg)}\n{msg}")
        touched = list(range(c * per_commit, (c + 1) * per_commit)) + [(c * 7919) % FILES for _ in range(3)]
        for i in touched:
            body = "".join(f"line {j} of file {i} rev {c}\n" for j in range(40))
            lines.append(f"M 100644 inline pkg{i % 40}/mod{i}.py\ndata {len(body.encode())}\n{body}")
    data = "\n".join(lines) + "\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=data.encode(), env=env, check=True)
    subprocess.run(["git", "checkout", "-q", "master"], cwd=path, env=env, check=True)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-git-"))
    try:
        env = git_env(tmp)
        source = tmp / "source"
        generate(source, env)
        home, port = tmp / "home", free_port()
        token = json.loads(mlyard("init", "--port", str(port), "--json", home=home).stdout)["token"]
        server = Server(home=home, port=port, token=token)
        server.start()
        try:
            run_benchmark(server, source, tmp, env, args.runs)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_benchmark(server: Server, source: Path, tmp: Path, env: dict[str, str], runs: int) -> None:
    push_http, push_file, clone_http, clone_file = [], [], [], []
    for i in range(runs):
        name = f"bench{i}"
        with server.client() as api:
            api.post("/api/v1/repos", json={"name": name}).raise_for_status()
        push_http.append(timed(["git", "push", "-q", server.remote(name), "master"], source, env))
        bare = tmp / f"plain{i}.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], env=env, check=True)
        push_file.append(timed(["git", "push", "-q", f"file://{bare}", "master"], source, env))
    bare = server.home / "repos" / "bench0.git"
    for i in range(runs):
        clone_http.append(timed(["git", "clone", "-q", server.remote("bench0"), str(tmp / f"h{i}")], tmp, env))
        clone_file.append(timed(["git", "clone", "-q", f"file://{bare}", str(tmp / f"f{i}")], tmp, env))
    size = sum(f.stat().st_size for f in (bare / "objects").rglob("*") if f.is_file())
    print(
        f"repository: {FILES} files, {COMMITS} commits, {size / 1e6:.1f} MB of objects; {runs} runs each; "
        f"{os.cpu_count()} cores"
    )
    print(f"{'operation':<10}{'mlyard http (s)':>18}{'file:// (s)':>14}{'ratio':>9}")
    for label, http, plain in (("clone", clone_http, clone_file), ("push", push_http, push_file)):
        h, f = statistics.median(http), statistics.median(plain)
        print(f"{label:<10}{h:>18.3f}{f:>14.3f}{h / f:>8.2f}x")
    ratio = statistics.median(clone_http) / statistics.median(clone_file)
    print(f"target: clone within 1.5x of file:// -> {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    with machine_phase():
        main()
