"""A generated project's test process exits without a last garbage collection of everything it imported (issue
15: half a second of CPU per pipeline step), but only when pytest is the program."""

from __future__ import annotations

import gc
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


DEFAULT = gc.get_threshold()[0]  # 700; mlyard's tests turn the collector off or on, never change its thresholds
COLLECTION_PROBE = '''import gc

COLLECTING = gc.get_threshold()[0]


def test_probe():
    print(f"collecting {COLLECTING} testing {gc.get_threshold()[0]} frozen {gc.get_freeze_count() > 0}")
'''


def test_pytest_collects_garbage_rarely_while_collecting_and_as_it_was_for_the_tests(
    demo_project: Path, tmp_path: Path
) -> None:
    """Collecting tests/unit imports pandas and scikit-learn: the collector runs every 50,000 new objects then, and
    as before (700 by default, or off) for the tests; what collection made is frozen only when pytest is the
    program."""
    project = Path(shutil.copytree(demo_project, tmp_path / "p"))
    (project / "tests" / "unit" / "test_probe.py").write_text(COLLECTION_PROBE, encoding="utf-8")
    probe = ["tests/unit/test_probe.py", "-p", "no:cacheprovider", "-q", "-s"]

    as_program = run_python(project, "-m", "pytest", *probe)
    assert as_program.returncode == 0, as_program.stdout + as_program.stderr
    assert f"collecting 50000 testing {DEFAULT} frozen True" in as_program.stdout

    inside = run_python(project, "-c", f"import sys, pytest; sys.exit(pytest.main({probe!r}))")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert f"collecting 50000 testing {DEFAULT} frozen False" in inside.stdout

    off = run_python(project, "-c", f"import gc, sys, pytest; gc.set_threshold(0); sys.exit(pytest.main({probe!r}))")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "collecting 0 testing 0 frozen False" in off.stdout  # a collector turned off stays off


PROGRAMS_PROBE = """import gc, runpy, sys
DEFAULT = gc.get_threshold()[0]


def program(name, argv, run):
    sys.argv = argv
    try:
        run()
    except SystemExit:  # --help
        pass
    print(name, gc.get_threshold()[0])
    gc.set_threshold(DEFAULT)  # as the next program would start


program("registry", ["mlops/registry.py", "--help"], lambda: runpy.run_path("mlops/registry.py", run_name="__main__"))
program("gate", ["mlops/gate.py", "--help"], lambda: runpy.run_path("mlops/gate.py", run_name="__main__"))
program("batch", ["batch", "--help"], lambda: runpy.run_module("{package}.batch", run_name="__main__"))
import {package}.batch  # its first import under its own name: as the tests import it
runpy.run_path("mlops/gate.py", run_name="model_gate")  # as registry.py ci loads it
print("imported", gc.get_threshold()[0])
"""


def test_the_step_programs_collect_garbage_rarely_but_not_when_imported(demo_project: Path) -> None:
    """mlops/registry.py, mlops/gate.py and `python -m <package>.batch` are mostly imports: run as programs, the
    collector runs every 50,000 new objects; imported (registry.py ci loads gate.py, tests import batch), the
    importing Python's collector is left as it is. One Python runs each program in turn (each sets the threshold
    when it starts as `__main__`; the probe puts it back before the next), then imports the two."""
    proc = run_python(demo_project, "-c", PROGRAMS_PROBE.format(package="my_model"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = ("registry", "gate", "batch", "imported")
    shown = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in names]
    assert shown == ["registry 50000", "gate 50000", "batch 50000", f"imported {DEFAULT}"], proc.stdout


SKOPS_PROBE = """import json, sys
import {package}  # as the steps that log or load a model: the project's package before MLflow
import mlflow.sklearn
import skops.io._trusted_types as trusted
order = list(sys.modules)
print(json.dumps({{"scipy_first": order.index("scipy.special") < order.index("mlflow"),
                  "names": trusted.SCIPY_UFUNC_TYPE_NAMES}}))
"""


def test_the_package_imports_scipy_special_before_mlflow_and_skops_finds_the_same_names(
    demo_project: Path, skops_names_mlflow_first: list[str]
) -> None:
    """skops (MLflow's format for scikit-learn models) searches the loaded modules in import order for each
    scipy.special function when it is imported: the project's package imports scipy.special first, so that the
    search is short. The trusted names it finds are those found when MLflow comes first."""
    import json

    package = next(p.name for p in (demo_project / "src").iterdir() if (p / "__init__.py").is_file())
    found = run_python(demo_project, "-c", SKOPS_PROBE.format(package=package))
    assert found.returncode == 0, found.stdout + found.stderr
    seen = json.loads(found.stdout.splitlines()[-1])
    assert seen["scipy_first"] is True
    assert seen["names"] == skops_names_mlflow_first
