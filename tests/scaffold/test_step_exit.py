"""A generated project's test process exits without a last garbage collection of everything it imported (issue
15: half a second of CPU per pipeline step), but only when pytest is the program."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.scaffold.conftest import run_python

PROBE = '''import atexit
import gc


def test_probe():
    # atexit runs after pytest has finished and before the interpreter's last collections
    atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count() > 0}", flush=True))
'''


def test_pytest_as_the_program_exits_without_collecting_but_not_inside_another_python(
    demo_project: Path, tmp_path: Path
) -> None:
    project = Path(shutil.copytree(demo_project, tmp_path / "p"))
    (project / "tests" / "unit" / "test_probe.py").write_text(PROBE, encoding="utf-8")
    probe = ["tests/unit/test_probe.py", "-p", "no:cacheprovider", "-q"]

    as_program = run_python(project, "-m", "pytest", *probe)
    assert as_program.returncode == 0, as_program.stdout + as_program.stderr
    assert "frozen at exit: True" in as_program.stdout

    inside = run_python(project, "-c", f"import sys, pytest; sys.exit(pytest.main({probe!r}))")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "frozen at exit: False" in inside.stdout  # a notebook or mlops/registry.py ci frees its own memory
