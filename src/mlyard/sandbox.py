"""Step isolation: user code (pipeline steps, `jobs run` entry points) runs in a bubblewrap sandbox.

Inside, the system is read-only (`--ro-bind / /`), /tmp is private, the hidden paths (the server's data
directory, the CLI config, the agent's work root) are empty, and only the paths given as writable (the
job's work directory) or readable are bound back. The process gets its own PID and IPC namespaces (no
/proc/<server pid>/environ), holds no capability (an agent running as root would otherwise pass root's
capabilities on, and a step could unmount what hides the data directory), dies with its parent, and
shares the network (steps reach the server over
HTTP with their job token). Its environment is what the caller passes, built from an allow-list.

`MLYARD_BWRAP` names the bwrap binary (default: `bwrap` on PATH); pointing it at a missing file makes the
sandbox unavailable, which is how the refusal is tested. Where the sandbox is unavailable, agents and the
server refuse to run user code unless started with `--unsandboxed-steps`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlyard.errors import OperationFailed

BWRAP_ENV = "MLYARD_BWRAP"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder `import mlyard` finds it in
PROBE_SECONDS = 10
# Variables of the agent's own environment that user code gets; everything else is dropped.
PASSED_VARIABLES = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME")
PASSED_PREFIXES = ("LC_",)
UNSANDBOXED_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user "
    "namespaces, or start with --unsandboxed-steps on a single-user machine (steps then run with the "
    "OS user's rights: they can read the server's data directory and its secret key)"
)


class SandboxUnavailable(OperationFailed):
    """bubblewrap is missing or cannot create its namespaces, and unsandboxed steps were not allowed."""


def passed_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of an environment (default: this process's)."""
    env = os.environ if source is None else source
    return {
        key: value for key, value in env.items() if key in PASSED_VARIABLES or key.startswith(PASSED_PREFIXES)
    }


def bwrap_binary() -> str:
    return os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or "/usr/bin/bwrap"


@functools.cache
def probe(binary: str) -> str | None:
    """Why `binary` cannot sandbox a process (None: it can). Tried once per binary: `bwrap ... true`."""
    if not Path(binary).is_file():
        return f"bubblewrap ({binary}) is not installed"
    argv = Sandbox(binary).command(["true"], cwd=Path("/"), work=[])
    try:
        proc = subprocess.run(argv, env=passed_environment(), capture_output=True, text=True,
                              timeout=PROBE_SECONDS, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({binary}) could not start: {exc}"
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return f"bubblewrap ({binary}) cannot create a sandbox here: {reason[0]}"
    return None


@dataclass(frozen=True)
class Sandbox:
    """How user processes are wrapped: `bwrap` set = in a bubblewrap sandbox that hides `hidden`;
    None = run directly, with the agent's OS rights (`--unsandboxed-steps`)."""

    bwrap: str | None
    hidden: tuple[Path, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.bwrap is not None

    @classmethod
    def none(cls) -> Sandbox:
        return cls(None)

    @classmethod
    def detect(cls, *, hidden: Sequence[Path] = (), unsandboxed: bool = False) -> Sandbox:
        """The bubblewrap sandbox when it works; else no sandbox if `unsandboxed`, else SandboxUnavailable."""
        binary = bwrap_binary()
        problem = probe(binary)
        if problem is None:
            return cls(binary, tuple(Path(path).resolve() for path in hidden))
        if unsandboxed:
            return cls.none()
        raise SandboxUnavailable(f"steps cannot be isolated: {problem}; {UNSANDBOXED_HINT}")

    def hiding(self, *paths: Path) -> Sandbox:
        """The same sandbox hiding `paths` too."""
        return Sandbox(self.bwrap, (*self.hidden, *(Path(path).resolve() for path in paths)))

    def command(
        self, argv: Sequence[str], *, cwd: Path, work: Sequence[Path], readable: Sequence[Path] = (),
        writable: Sequence[Path] = (), info_fd: int | None = None,
    ) -> list[str]:  # fmt: skip
        """argv, wrapped so that it runs in the sandbox with `cwd` as working directory.

        The hidden paths are emptied first; then `readable` / `writable` (a connection's local store, a
        local origin) are bound, except a path that holds a hidden one (it would re-expose it); `work`
        (the job's own directory) is bound last, read-write. `info_fd`: bwrap writes the pid of the
        sandbox's PID namespace init (`child-pid`, JSON) to this inherited descriptor (the step never gets it).
        """
        if self.bwrap is None:
            return list(argv)
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                "--cap-drop", "ALL"]  # fmt: skip  # run as root, bwrap would keep root's capabilities (umount!)
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        binds = [("--ro-bind", path) for path in (*self._runtime(), *readable)]
        binds += [("--bind", path) for path in writable]
        for option, path in binds:
            if path.exists() and not any(hidden.is_relative_to(path) for hidden in self.hidden):
                args += [option, str(path), str(path)]
        args += [arg for path in work for arg in ("--bind", str(path), str(path))]
        return [*args, "--chdir", str(cwd), "--", *argv]

    def _runtime(self) -> list[Path]:
        """This Python's installation and the folder mlyard is imported from (a checkout installed in
        editable mode), when a hidden path or /tmp would cover them (a clone and its venv in /tmp)."""
        covered = (*self.hidden, Path("/tmp"))
        roots = (sys.prefix, sys.base_prefix, PACKAGE_ROOT)
        prefixes = dict.fromkeys(Path(root).resolve() for root in roots)
        return [path for path in prefixes if any(path.is_relative_to(top) for top in covered)]


def default_home() -> Path:
    """The data directory a server on this machine uses by default (MLYARD_HOME, else ~/.mlyard)."""
    return Path(os.environ.get("MLYARD_HOME") or Path.home() / ".mlyard")


def server_paths(home: Path) -> list[Path]:
    """What user code never sees of a server: its data directory and the default CLI config location."""
    return [home, Path.home() / ".mlyard"]


def server_step_sandbox(home: Path, *, unsandboxed: bool, agents: int) -> Sandbox:
    """The sandbox of the steps of the local agents of the server of `home`: bubblewrap hiding the server's paths,
    or none when bubblewrap cannot sandbox here and `unsandboxed` (--unsandboxed-steps) or the server runs no local
    agent; else SandboxUnavailable: the server does not start. `mlyard server` asks before its imports (a refusal
    in a fraction of a second; bubblewrap is tried once per process: `probe`), then `create_app` again."""
    try:
        return Sandbox.detect(hidden=server_paths(home), unsandboxed=unsandboxed or agents == 0)
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(f"the server does not start its local agents: {exc.message}") from None


def store_paths(settings: dict[str, str]) -> list[Path]:
    """The local stores a connection's settings name (`sqlite:///FILE`: FILE's folder, `file://DIR`),
    which a step using the connection may read and write."""
    paths = []
    for value in settings.values():
        if value.startswith("sqlite:///"):
            paths.append(Path(value.removeprefix("sqlite://")).parent)
        elif value.startswith("file://"):
            paths.append(Path(urlparse(value).path))
    return [path for path in dict.fromkeys(paths) if path.is_absolute() and path != Path("/")]
