"""`mlyard quickstart --exit` in a fresh home: from nothing to a live endpoint, then everything stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.long]


def test_quickstart_exit_in_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if k not in ("MLYARD_URL", "MLYARD_TOKEN", "MLYARD_HOME")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlyard",
            "quickstart",
            "--home",
            str(home),
            "--port",
            str(free_port()),
            "--exit",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["model"] == "my-model" and summary["environment"] == "dev"
    assert summary["scoring_uri"].endswith("/invocations")
    assert len(summary["prediction"]) == 2 and set(summary["prediction"]) <= {0, 1}
    assert summary["version"] == "1" and summary["created_home"] is True
    assert (home / "envs" / "dev" / "workspace" / "ml_apps" / "my-model" / "master").exists()
    assert "Traceback" not in proc.stderr
    # the drift demo (issue 14): a shifted batch, and the report that flags exactly the shifted features
    assert summary["drifted"] == ["mean radius", "worst radius"], proc.stderr[-3000:]
    assert "DRIFT mean radius" in proc.stderr
    leftovers = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(home) in " ".join(p.info["cmdline"] or []):
                leftovers.append(p.info["cmdline"])
        except psutil.Error:
            continue
    assert leftovers == []  # --exit stops the server, and the server its endpoints
