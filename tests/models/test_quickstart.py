"""`mlyard quickstart` in a fresh home: from nothing to a live endpoint, progress lines without a terminal,
no run left waiting; SIGTERM stops everything it started; a second run reuses the demo project; a port of
another server is refused with a clear error."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import Server, free_port

pytestmark = [pytest.mark.slow]


def _env() -> dict[str, str]:
    # Without PYTHONUNBUFFERED (a developer's shell may set it): the summary must reach a pipe while the
    # server keeps running, as it does for a user piping `--json` to a file.
    dropped = ("MLYARD_URL", "MLYARD_TOKEN", "MLYARD_HOME", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "COLUMNS": "80"}


def _quickstart(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlyard", "quickstart", *args]


def _leftovers(home: Path) -> list[list[str]]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(home) in " ".join(p.info["cmdline"] or []):
                found.append(p.info["cmdline"])
        except psutil.Error:
            continue
    return found


def _wait_gone(home: Path, timeout: float = 30) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    left = _leftovers(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _leftovers(home)
    return left


def _summary_of(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> dict:
    """The JSON summary a running quickstart printed (it then keeps the server running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text()
        if text.rstrip().endswith("}"):
            try:
                return dict(json.loads(text))
            except json.JSONDecodeError:
                pass
        assert proc.poll() is None, f"quickstart exited {proc.returncode}"
        time.sleep(0.5)
    raise AssertionError("quickstart printed no summary")


def _progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.long
def test_quickstart_fresh_then_sigterm_then_again_reusing_the_project(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(_quickstart("--home", str(home), "--port", str(free_port()), "--json"),
                                env=_env(), stdout=stdout, stderr=stderr)  # fmt: skip
    try:
        summary = _summary_of(proc, out, timeout=900)
        assert summary["model"] == "my-model" and summary["environment"] == "dev"
        assert summary["scoring_uri"].endswith("/invocations")
        assert len(summary["prediction"]) == 2 and set(summary["prediction"]) <= {0, 1}
        assert summary["version"] == "1" and summary["created_home"] is True and summary["reused"] is False
        # the figure: from nothing to a scored endpoint (the drift demo comes after it)
        assert 0 < summary["seconds_to_scored_endpoint"] <= summary["seconds"]
        assert (home / "envs" / "dev" / "workspace" / "ml_apps" / "my-model" / "master").exists()
        # where to sign in, and with which token
        assert summary["token"] == json.loads((home / "cli.json").read_text())["token"]
        with httpx.Client(base_url=summary["url"], headers={"Authorization": f"Bearer {summary['token']}"}) as api:
            runs = api.get("/api/v1/runs").json()
            # the person who asked, not the creator's service user, requested the runs of the first push
            requested = {r["pipeline"]: api.get(f"/api/v1/runs/{r['id']}").json()["requested_for"] for r in runs}
        states = {(r["pipeline"], r["id"]): r["state"] for r in runs}
        assert not [k for k, v in states.items() if v in ("waiting", "succeededWithIssues", "notStarted", "queued")]
        assert len([k for k in states if k[0] == "my-model-promote-model"]) == 1  # run #1 promoted the version
        assert requested["my-model-deploy-code"] == requested["my-model-promote-model"] == summary["username"]
        # without a terminal: a line when each step starts and when it is done, each line once
        lines = _progress_lines(err.read_text())
        assert any(line.startswith("[1/") and line.endswith("...") for line in lines)
        assert len([line for line in lines if ": done in " in line]) == len(summary["step_seconds"])
        assert len(lines) == len(set(lines)), lines
        assert "Traceback" not in err.read_text()
        # the drift demo (issue 14): a shifted batch, and the report that flags exactly the shifted features
        assert summary["drifted"] == ["mean radius", "worst radius"], err.read_text()[-3000:]
        assert "DRIFT mean radius" in err.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)  # like Ctrl-C: the server and its scoring servers stop
        proc.wait(60)
    assert _wait_gone(home) == []

    again = subprocess.run(_quickstart("--home", str(home), "--exit"), env=_env(), capture_output=True, text=True,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    text = again.stdout
    assert "reusing the demo project my-model" in text and "Traceback" not in again.stderr
    assert f"web UI      {summary['url']}/login" in text  # where to sign in, and with which token
    assert f"user        {summary['username']}" in text and f"token       {summary['token']} " in text
    assert "model       my-model version 1 in Production (dev)" in text and "prediction  [" in text
    assert re.search(r"mlyard is running \([\d.]+ s\), a scored endpoint after [\d.]+ s", text)
    lines = _progress_lines(text)
    assert len([line for line in lines if ": done in " in line]) == len(summary["step_seconds"])
    assert len(lines) == len(set(lines)), lines
    assert _wait_gone(home) == []  # --exit stops the server, and the server its endpoints
    seconds = re.search(r"mlyard is running \(([\d.]+) s\)", text)
    print(f"quickstart: first run {summary['seconds']} s, second run {seconds and seconds.group(1)} s")


def test_quickstart_refuses_a_port_another_server_holds(server: Server, tmp_path: Path) -> None:
    other = subprocess.run(_quickstart("--home", str(tmp_path / "a"), "--port", str(server.port), "--exit"),
                           env=_env(), capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert other.returncode != 0
    text = " ".join(other.stderr.split())
    assert f"{server.url} is another mlyard server" in text and "invalid token" not in text
    assert "Traceback" not in other.stderr and not (tmp_path / "a").exists()  # a new home: refused before its init
    with socket.socket() as sock:  # not an mlyard server at all
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = subprocess.run(_quickstart("--home", str(tmp_path / "b"), "--port", str(port), "--exit"),
                              env=_env(), capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert busy.returncode != 0
    assert f"port {port} of http://127.0.0.1:{port} is used by another program" in " ".join(busy.stderr.split())
    assert "`mlyard quickstart --port N`" in busy.stderr and not (tmp_path / "b").exists()  # nothing half-made
    assert _wait_gone(tmp_path) == []
