"""CPU time of client commands: `mlyard --help` and `mlyard repos list` against a real server.

Target: each under 0.3 s of CPU (user + system) on this machine. Prints medians and minimums.

The package is byte-compiled first, as `pip install` does for a regular install: an editable install
run with PYTHONDONTWRITEBYTECODE=1 (set on this machine) would otherwise recompile every changed
module of mlyard on every command.

    python benchmarks/cli_startup.py [--runs 10]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.phase import machine_phase
from tests.conftest import Server, free_port, mlyard

MLYARD = str(Path(sys.executable).with_name("mlyard"))


def cpu_of(args: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([MLYARD, *args], env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def byte_compile() -> None:
    import compileall
    import re

    package = Path(__file__).resolve().parents[1] / "src" / "mlyard"
    # the project template is data copied into new projects, not code of the CLI
    compileall.compile_dir(package, quiet=1, rx=re.compile(r"project_template"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    byte_compile()
    tmp = Path(tempfile.mkdtemp(prefix="mlyard-bench-cli-"))
    try:
        home, port = tmp / "home", free_port()
        token = json.loads(mlyard("init", "--port", str(port), "--json", home=home).stdout)["token"]
        server = Server(home=home, port=port, token=token)
        server.start()
        env = {**os.environ, "MLYARD_HOME": str(home)}
        try:
            print(f"{'command':<22}{'median cpu (s)':>16}{'min cpu (s)':>13}{'target':>9}")
            for args in (["--help"], ["repos", "list"]):
                cpu_of(args, env)  # warm the page cache
                samples = [cpu_of(args, env) for _ in range(runs)]
                med = statistics.median(samples)
                print(f"{'mlyard ' + ' '.join(args):<22}{med:>16.3f}{min(samples):>13.3f}{'< 0.3':>9}"
                      f"  {'met' if med < 0.3 else 'NOT met'}")
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with machine_phase():
        main()
