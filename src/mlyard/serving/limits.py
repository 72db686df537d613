"""Resource limits of a scoring server on the `local` target, the way a container service applies a
deployment's `cpu` and `memory`: the process runs on ceil(cpu) cores (CPU affinity, and native thread
pools sized to match), and a watchdog stops it when its resident memory passes `memory` GB, as an
out-of-memory kill would; the platform's supervisor then restarts it (docs/deployments.md)."""

from __future__ import annotations

import math
import os
import sys
import threading

MEMORY_EXIT_CODE = 137  # what a container's out-of-memory kill reports (128 + SIGKILL)
_THREAD_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def cores_for(cpu: float) -> int:
    return max(1, math.ceil(cpu))


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def thread_pool_env(cpu: float) -> dict[str, str]:
    """Environment variables that size native thread pools (BLAS, OpenMP) to the cores granted."""
    return {name: str(cores_for(cpu)) for name in _THREAD_POOLS}


def apply_cpu_limit(cpu: float) -> list[int]:
    """Pin this process (and the threads it starts) to ceil(cpu) of the cores it may use; returns them."""
    cores = sorted(os.sched_getaffinity(0))[: cores_for(cpu)]
    os.sched_setaffinity(0, cores)
    # A warm pool process (mlyard.serving.pool) already runs threads (BLAS pools): pin each of them too.
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = []
    for tid in threads[:4096]:
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:
            continue  # a thread that ended meanwhile
    return cores


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def watch_memory(limit_gb: float, *, interval: float = 0.25) -> threading.Thread:
    """Stop the process with MEMORY_EXIT_CODE once its resident memory passes `limit_gb`."""
    limit = int(limit_gb * 1024**3)

    def watch() -> None:
        while True:
            rss = resident_bytes()
            if rss > limit:
                print(
                    f"mlyard serving: memory limit exceeded: {rss / 1024**2:.0f} MiB resident > "
                    f"{limit / 1024**2:.0f} MiB (--memory {limit_gb:g} GB); stopping",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(MEMORY_EXIT_CODE)
            threading.Event().wait(interval)

    thread = threading.Thread(target=watch, name="mlyard-memory-limit", daemon=True)
    thread.start()
    return thread
