"""The machine's phase, printed before and after each benchmark: the same code's figures change with it.

This machine's speed changes from hour to hour (a shared host): `import mlflow` took 1.5 s of CPU when quiet and
2.2-3.4 s in slow phases, and the interpreter counts as much (a Python built without profile-guided and link-time
optimisation is about a fifth slower: docs/testing.md, session 18). Each benchmark prints the interpreter and the
CPU of a fixed pure-Python workload (integer arithmetic, string keys in a dict; the median of three) at its start
and at its end, so its figures can be compared with another run's: 0.32-0.42 s with Debian's Python 3.11 and
0.48-0.50 s with pyenv's build, in turns, in session 18.

    with machine_phase():
        main()

    python benchmarks/phase.py [LABEL]   # one line: LABEL and the workload's CPU (.ci/run: before and after the suite)
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator

ROUNDS = 3
SIZE = 1_500_000


def workload() -> float:
    """CPU seconds of the fixed workload, the median of ROUNDS runs."""
    times = []
    for _ in range(ROUNDS):
        began = time.process_time()
        total = 0
        for i in range(SIZE):
            total += i * i % 7
        keys = {str(i): i for i in range(SIZE // 4)}
        times.append(time.process_time() - began)
        del keys
    return statistics.median(times)


def interpreter() -> str:
    return f"Python {sys.version.split()[0]} from {sys.base_prefix}"


def phase_line(label: str) -> str:
    """`label`, the interpreter and the workload's CPU, on one line."""
    return f"{label}: {interpreter()}; a fixed pure-Python workload: {workload():.3f} s of CPU (benchmarks/phase.py)"


@contextlib.contextmanager
def machine_phase() -> Iterator[None]:
    """Print the interpreter and the workload's CPU before the benchmark runs and after it."""
    print(phase_line("machine"), flush=True)
    try:
        yield
    finally:
        print(f"machine, at the end: the fixed pure-Python workload: {workload():.3f} s of CPU", flush=True)


if __name__ == "__main__":  # one line, for .ci/run before and after the suite
    print(phase_line(sys.argv[1] if len(sys.argv) > 1 else "machine"))
