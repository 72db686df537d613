"""Runs the entry point of a Python wheel as a job task (Databricks' python_wheel_task).

    python wheel_runner.py WHEEL PACKAGE ENTRY_POINT [ARGS...]

Started by path inside the job's sandbox (standard library only). The wheel is put first on `sys.path`
(Python imports pure-Python packages from a wheel file as from a zip). As on Databricks, ENTRY_POINT is
the name of an entry point in the wheel's metadata (`[project.scripts]`, any group), else a function of
the package (`PACKAGE.ENTRY_POINT()`). `sys.argv` becomes `[ENTRY_POINT, *ARGS]`; an integer the function
returns is the exit code.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable
from typing import Any


def find(wheel: str, package: str, entry_point: str) -> Callable[[], Any]:
    for dist in importlib.metadata.distributions(path=[wheel]):
        for candidate in dist.entry_points:
            if candidate.name == entry_point:
                loaded: Callable[[], Any] = candidate.load()
                return loaded
    module = importlib.import_module(package)
    function = getattr(module, entry_point, None)
    if not callable(function):
        raise SystemExit(f"the wheel has no entry point {entry_point!r} and package {package!r} no function of that "
                         "name: check python_wheel_task.entry_point")  # fmt: skip
    return function  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: wheel_runner.py WHEEL PACKAGE ENTRY_POINT [ARGS...]", file=sys.stderr)
        return 2
    wheel, package, entry_point, *args = argv
    sys.path.insert(0, wheel)
    sys.argv = [entry_point, *args]
    result = find(wheel, package, entry_point)()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
