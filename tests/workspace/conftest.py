"""Helpers for workspace tests: source trees on disk and the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the real `mlyard` entry point; mounts `mlyard workspace` if cli/main.py does not register it (yet).
_ENTRY = """
import sys
from mlyard.cli import main
if not any(group.name == "workspace" for group in main.app.registered_groups):
    from mlyard.cli.workspace import workspace_app
    main.app.add_typer(workspace_app, name="workspace")
sys.argv[0] = "mlyard"
main.main()
"""

# Variables a pipeline step would set; a test sets the ones it needs.
_PIPELINE_VARS = (
    "WORKSPACE_URI",
    "BUILD_SOURCEVERSION",
    "BUILD_BUILDID",
    "BUILD_REQUESTEDFOR",
    "MLYARD_RUNURL",
    "MLYARD_URL",
    "MLYARD_TOKEN",
)


def build_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) below `root`; return `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_cli(
    *args: str, home: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in _PIPELINE_VARS}
    full_env.update({"MLYARD_HOME": str(home), "COLUMNS": "200", **(env or {})})
    proc = subprocess.run(
        [sys.executable, "-c", _ENTRY, *args], env=full_env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlyard {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small project: code, a test, and folders that are never deployed."""
    return build_tree(
        tmp_path / "source",
        {
            "src/demo/__init__.py": "",
            "src/demo/train.py": "# Databricks notebook source\nprint('train')\n",
            "tests/unit/test_train.py": "def test_ok():\n    assert True\n",
            ".git/HEAD": "ref: refs/heads/master\n",
            "src/demo/__pycache__/train.cpython-311.pyc": "compiled",
            ".venv/bin/python": "binary",
        },
    )
