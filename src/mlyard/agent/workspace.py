"""The work directory of one job and the predefined variables that describe it.

Layout (Azure's): `$(Pipeline.Workspace)` is a fresh folder under the agent's work root, with `s/`
(sources: Build.SourcesDirectory = System.DefaultWorkingDirectory), `a/` (Build.ArtifactStagingDirectory),
`b/` (Build.BinariesDirectory), `tmp/` (Agent.TempDirectory) and `home/` (HOME of the job's processes).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from mlyard.pipelines.predefined import agent_job_variables
from mlyard.protocol import JobSpec

KEEP_WORK_ENV = "MLYARD_KEEP_WORK"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def sources(self) -> Path:
        return self.root / "s"

    @property
    def artifacts(self) -> Path:
        return self.root / "a"

    @property
    def binaries(self) -> Path:
        return self.root / "b"

    @property
    def temp(self) -> Path:
        return self.root / "tmp"

    @property
    def home(self) -> Path:
        """HOME of the job's processes (never the agent's own home)."""
        return self.root / "home"


def create_workspace(work_root: Path, spec: JobSpec, *, slot: Path | None = None) -> Workspace:
    """A fresh, empty work directory for the job (work directories an earlier agent process left to remove
    are removed first); in `slot` (a warm sandboxes' slot directory under the work root) when given."""
    work_root.mkdir(parents=True, exist_ok=True)
    _REMOVER.sweep(work_root)
    root = Path(tempfile.mkdtemp(prefix=f"job{spec.job_id}-", dir=slot or work_root)).resolve()
    workspace = Workspace(root)
    for folder in (workspace.sources, workspace.artifacts, workspace.binaries, workspace.temp, workspace.home):
        folder.mkdir()
    return workspace


def remove_workspace(workspace: Workspace, *, work_root: Path | None = None) -> None:
    """Delete the work directory, unless MLYARD_KEEP_WORK=1 asks to keep it for debugging.

    The directory is renamed away at once (nothing can find it under its job's name any more; into
    `work_root` when given, out of a warm sandboxes' slot, which it leaves empty) and deleted by a
    background thread, so the job's outcome is reported without waiting for the files to go."""
    if os.environ.get(KEEP_WORK_ENV) == "1":
        if work_root is not None and workspace.root.parent != work_root.resolve():
            with contextlib.suppress(OSError):  # kept, but not in the slot the next job's sandboxes see
                workspace.root.rename(work_root.resolve() / workspace.root.name)
        return
    _REMOVER.remove(workspace.root, work_root.resolve() if work_root is not None else None)


class _Remover:
    """Deletes renamed work directories in one background thread; at most MAX_PENDING wait (beyond, the
    caller deletes its own at once)."""

    PREFIX = ".removing-"
    MAX_PENDING = 4
    MAX_SWEPT = 16  # leftovers of a killed agent removed per new job

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Path] = []
        self._thread: threading.Thread | None = None

    def remove(self, root: Path, folder: Path | None = None) -> None:
        trash = (folder or root.parent) / (self.PREFIX + root.name)
        try:
            root.rename(trash)
        except OSError:
            shutil.rmtree(root, ignore_errors=True)
            return
        with self._lock:
            if len(self._pending) < self.MAX_PENDING:
                self._pending.append(trash)
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="mlyard-remove-work", daemon=True)
                    self._thread.start()
                return
        shutil.rmtree(trash, ignore_errors=True)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
                trash = self._pending[0]
            shutil.rmtree(trash, ignore_errors=True)
            with self._lock:
                self._pending.remove(trash)

    def sweep(self, work_root: Path) -> None:
        """Delete what a previous agent process renamed away and could not finish deleting."""
        with self._lock:
            pending = set(self._pending)
        leftovers = [path for path in work_root.glob(self.PREFIX + "*") if path not in pending]
        for path in leftovers[: self.MAX_SWEPT]:
            shutil.rmtree(path, ignore_errors=True)

    def wait(self, timeout: float = 10.0) -> None:
        """Until every pending directory is deleted (tests, and agents that stop)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)


_REMOVER = _Remover()


def wait_for_removals(timeout: float = 10.0) -> None:
    """Wait for the work directories being deleted in the background."""
    _REMOVER.wait(timeout)


def predefined_variables(spec: JobSpec, workspace: Workspace, *, agent_name: str, work_root: Path) -> dict[str, str]:
    """The variables the agent itself defines (they win over same-named ones in the spec)."""
    sources = str(workspace.sources)
    return {
        "Pipeline.Workspace": str(workspace.root),
        "Agent.BuildDirectory": str(workspace.root),
        "Build.SourcesDirectory": sources,
        "Build.Repository.LocalPath": sources,
        "System.DefaultWorkingDirectory": sources,
        "Build.ArtifactStagingDirectory": str(workspace.artifacts),
        "Build.StagingDirectory": str(workspace.artifacts),
        "System.ArtifactsDirectory": str(workspace.artifacts),
        "Build.BinariesDirectory": str(workspace.binaries),
        "Agent.TempDirectory": str(workspace.temp),
        "Agent.WorkFolder": str(work_root.resolve()),
        "Agent.HomeDirectory": str(Path(sys.executable).resolve().parent.parent),
        "Agent.ToolsDirectory": str(work_root.resolve() / "_tool"),
        "Agent.Name": agent_name,
        "Agent.MachineName": platform.node(),
        "Agent.OS": {"Linux": "Linux", "Darwin": "Darwin", "Windows": "Windows_NT"}.get(platform.system(), "Linux"),
        "Agent.OSArchitecture": "ARM64" if platform.machine() in ("arm64", "aarch64") else "X64",
        "Agent.JobName": spec.display_name or spec.name,
        **agent_job_variables(spec.job_id, spec.stage, spec.name, spec.display_name, spec.attempt),
        "TF_BUILD": "True",
    }
