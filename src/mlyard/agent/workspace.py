"""The work directory of one job and the predefined variables that describe it.

Layout (Azure's): `$(Pipeline.Workspace)` is a fresh folder under the agent's work root, with `s/`
(sources: Build.SourcesDirectory = System.DefaultWorkingDirectory), `a/` (Build.ArtifactStagingDirectory),
`b/` (Build.BinariesDirectory), `tmp/` (Agent.TempDirectory) and `home/` (HOME of the job's processes).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
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


def create_workspace(work_root: Path, spec: JobSpec) -> Workspace:
    """A fresh, empty work directory for the job."""
    work_root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"job{spec.job_id}-", dir=work_root)).resolve()
    workspace = Workspace(root)
    for folder in (workspace.sources, workspace.artifacts, workspace.binaries, workspace.temp, workspace.home):
        folder.mkdir()
    return workspace


def remove_workspace(workspace: Workspace) -> None:
    """Delete the work directory, unless MLYARD_KEEP_WORK=1 asks to keep it for debugging."""
    if os.environ.get(KEEP_WORK_ENV) == "1":
        return
    shutil.rmtree(workspace.root, ignore_errors=True)


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
