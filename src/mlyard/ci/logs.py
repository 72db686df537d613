"""Step logs: append-only files per step under `<home>/runs/<run>/logs/<job>/<step>.log`.

Each line is `<ISO timestamp> <text>`; the job's own lines (no step) go to `job.log`. Lines arrive
already masked by the agent; the server masks them again with the secrets it knows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_lock = threading.Lock()


def run_dir(home: Path, run_id: int) -> Path:
    return home / "runs" / str(int(run_id))


def log_file(home: Path, run_id: int, job_id: int, step_key: str | None) -> Path:
    name = "job" if not step_key else _SAFE.sub("_", step_key)
    return run_dir(home, run_id) / "logs" / str(int(job_id)) / f"{name}.log"


def append(path: Path, lines: Iterable[tuple[float, str]]) -> int:
    """Append (unix time, text) lines; returns how many were written."""
    rendered = []
    for stamp, text in lines:
        when = datetime.fromtimestamp(float(stamp), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for part in str(text).splitlines() or [""]:
            rendered.append(f"{when} {part}\n")
    if not rendered:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.writelines(rendered)
    return len(rendered)


def read(path: Path, offset: int = 0) -> tuple[str, int]:
    """Text of `path` from byte `offset` (whole lines only) and the new offset."""
    if not path.exists():
        return "", offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", "replace"), offset + end


def mask(text: str, secrets: Iterable[str]) -> str:
    for value in sorted({s for s in secrets if s and len(s) >= 2}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
