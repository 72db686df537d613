"""A step cannot undo its sandbox: it holds no capability, so it cannot unmount what hides the server's
data directory, remount the system writable or mount anything, even when the agent runs as root (as
in CI and in many containers), where bubblewrap would otherwise keep root's capabilities."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import mlyard
from mlyard.sandbox import Sandbox, passed_environment

SECRET = "hidden-by-the-sandbox-77c1"
ATTEMPTS = """
grep CapEff /proc/self/status
umount {home} 2>&1 || true
cat {home}/secret.key 2>&1 || true
mount -o remount,rw / 2>&1 || true
touch {escaped} 2>&1 || true
mount -t tmpfs none {work}/m 2>&1 || true
"""


def test_a_step_holds_no_capability_and_cannot_unmount_what_hides_the_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    (work / "m").mkdir(parents=True)
    (home / "secret.key").write_text(SECRET)
    sandbox = Sandbox.detect(hidden=[home])
    escaped = Path("/usr") / f"escaped-{uuid.uuid4().hex}"  # a file the read-only system must refuse
    script = ATTEMPTS.format(home=home, work=work, escaped=escaped)
    argv = sandbox.command(["bash", "-c", script], cwd=work, work=[work])
    done = subprocess.run(argv, env=passed_environment(), capture_output=True, text=True, timeout=60, check=False)
    out = done.stdout + done.stderr
    assert "CapEff:\t0000000000000000" in out, out
    assert SECRET not in out
    assert not escaped.exists()
    assert os.path.ismount(work / "m") is False


def test_a_checkout_of_mlyard_under_tmp_stays_importable_in_the_sandbox(tmp_path: Path) -> None:
    """A clone installed in editable mode in the temporary folder (as CI and a fresh clone may be) is
    imported from there: the sandbox's private temporary folder must not hide it from steps that run
    `python -m mlyard ...`."""
    copy = tmp_path / "clone" / "src"
    package = Path(mlyard.__file__).resolve().parent
    shutil.copytree(package, copy / "mlyard", ignore=shutil.ignore_patterns("__pycache__"))
    inner = f"import sys; sys.path.insert(0, {str(copy)!r}); import mlyard; print('imported', mlyard.__file__)"
    outer = (
        f"import subprocess, sys; sys.path.insert(0, {str(copy)!r}); from pathlib import Path\n"
        "from mlyard.sandbox import Sandbox, passed_environment\n"
        f"argv = Sandbox.detect().command([sys.executable, '-c', {inner!r}], cwd=Path('/'), work=[])\n"
        "done = subprocess.run(argv, env=passed_environment(), capture_output=True, text=True, timeout=60)\n"
        "print(done.stdout, done.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", outer], capture_output=True, text=True, timeout=120, check=False)
    assert f"imported {copy / 'mlyard' / '__init__.py'}" in done.stdout, done.stdout + done.stderr
