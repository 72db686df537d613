"""UsePythonVersion@0 selecting an installed interpreter other than the agent's own.

Source: "UsePythonVersion@0 - Use Python version v0 task" (versionSpec default 3.x, addToPath default
true, the `pythonLocation` variable). The "installed" Python here is a launcher on the agent's PATH
that answers the version probe with 3.5.99 and runs this machine's Python for anything else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlyard.protocol import SUCCEEDED
from tests.agent.conftest import Runner, job, script, step


@pytest.fixture
def python35(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pythons"
    folder.mkdir()
    launcher = folder / "python3.5"
    real = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    launcher.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ] && [ "${2#import sys; print}" != "$2" ]; then echo 3.5.99; exit 0; fi\n'
        f'exec {real} "$@"\n'
    )
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return launcher


def test_selects_an_installed_python_and_puts_it_first_on_path(run: Runner, python35: Path) -> None:
    spec = job(
        step("use", "UsePythonVersion@0", inputs={"versionSpec": "3.5.99"}),
        script("which", 'echo "python=$(command -v python) location=$PYTHONLOCATION"'),
        step("py", "PythonScript@0", inputs={"scriptSource": "inline", "script": "import sys; print(sys.prefix)"}),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("use") == SUCCEEDED, rec.issues("use")
    used = next(line for line in rec.logs["use"] if line.startswith("Using Python"))
    assert used.startswith(f"Using Python 3.5.99 ({python35}), which satisfies versionSpec '3.5.99'; ")
    assert used.endswith("/_tool/python-3.5.99/bin is first on PATH")
    line = next(line for line in rec.logs["which"] if line.startswith("python="))
    location = line.split("location=")[1]
    assert location.endswith("/_tool/python-3.5.99") and line.startswith(f"python={location}/bin/python ")
    assert location in rec.logs["py"]  # PythonScript@0 runs the selected Python (its virtual environment)
