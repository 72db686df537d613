"""UsePythonVersion@0: select an installed Python matching `versionSpec` ("3.11", "3.x", "3.11.x",
">= 3.9", ">=3.9 <3.13", "3.10 || 3.12").

The agent's own Python wins when it matches (steps keep it first on PATH, as without the task).
Otherwise the interpreters found on the agent's PATH and in the usual places (/usr/bin,
/usr/local/bin, /opt/python/*/bin, Azure's tool cache layout under Agent.ToolsDirectory and
/opt/hostedtoolcache, ~/.pyenv/versions) are asked their version; the highest match gets a virtual
environment in the job's work directory (so `python` and `pip install` work in later steps), whose
`bin` goes first on PATH (addToPath, default true) and whose folder is the `pythonLocation` variable.
Nothing is downloaded: no match fails the step naming the versions found.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

from mlyard.agent.environment import input_flag, step_input
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import SUCCEEDED, StepSpec
from mlyard.sandbox import passed_environment

MAX_CANDIDATES = 64
PROBE_SECONDS = 10
VENV_SECONDS = 300
SEARCHED = ("/usr/bin", "/usr/local/bin", "/opt/python/*/bin", "/opt/hostedtoolcache/Python/*/x64/bin",
            "~/.pyenv/versions/*/bin")  # fmt: skip
_NAME = re.compile(r"python3(\.\d+)?")
_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"

_COMPARATOR = re.compile(r"(>=|<=|>|<|=|==|\^|~)?\s*v?(\d+(?:\.(?:\d+|x|\*))*)")


def _matches_one(op: str, spec: str, version: tuple[int, int, int]) -> bool:
    numbers: list[int] = []
    for part in spec.split("."):
        if not part.isdigit():
            break  # x or *: any value from here on
        numbers.append(int(part))
    size = len(numbers)
    padded = tuple(numbers + [0] * (3 - size))
    head = version[:size]
    checks = {
        "": head == tuple(numbers), "=": head == tuple(numbers), "==": head == tuple(numbers),
        ">=": version >= padded, ">": head > tuple(numbers), "<": version < padded, "<=": head <= tuple(numbers),
        "^": version >= padded and version[0] == padded[0], "~": version >= padded and version[:2] == padded[:2],
    }  # fmt: skip
    return checks[op]


def version_matches(spec: str, version: tuple[int, int, int]) -> bool:
    """Whether `version` satisfies a semver-like `spec` (alternatives with `||`, all comparators of one
    alternative must hold)."""
    for alternative in spec.split("||"):
        comparators = _COMPARATOR.findall(alternative.strip())
        if comparators and all(_matches_one(op, text, version) for op, text in comparators):
            return True
    return False


def _folders(job: JobState) -> list[str]:
    tools = job.variables.get("Agent.ToolsDirectory") or ""
    patterns = [*passed_environment().get("PATH", "").split(os.pathsep), *SEARCHED]
    if tools:
        patterns.append(os.path.join(tools, "Python", "*", "x64", "bin"))
    folders: list[str] = []
    for pattern in patterns:
        if pattern:
            folders.extend(sorted(glob.glob(os.path.expanduser(pattern))))
    return folders


def installed_pythons(job: JobState) -> list[tuple[tuple[int, int, int], Path]]:
    """(version, interpreter) of the Pythons found, highest version first (each real file once)."""
    seen: set[Path] = set()
    found: list[tuple[tuple[int, int, int], Path]] = []
    for folder in _folders(job):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = Path(folder) / name
            real = path.resolve()
            if not _NAME.fullmatch(name) or real in seen or not os.access(path, os.X_OK) or not path.is_file():
                continue
            seen.add(real)
            if len(seen) > MAX_CANDIDATES:
                return sorted(found, reverse=True)
            version = _probe(path)
            if version is not None:
                found.append((version, path))
    return sorted(found, reverse=True)


def _probe(path: Path) -> tuple[int, int, int] | None:
    try:
        proc = subprocess.run([str(path), "-c", _PROBE], env=passed_environment(), capture_output=True, text=True,
                              timeout=PROBE_SECONDS, check=False, stdin=subprocess.DEVNULL, cwd="/")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    parts = proc.stdout.strip().split(".")
    if proc.returncode != 0 or len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def _shown(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def _virtual_environment(job: JobState, step: StepSpec, run: StepRun, python: Path, version: str) -> Path:
    """A virtual environment of `python` under the job's work directory (pip included when the
    interpreter has ensurepip)."""
    target = job.workspace.root / "_tool" / f"python-{version}"
    if (target / "bin" / "python").exists():
        return target
    job.log.write(step, f"Creating a virtual environment of {python} in {target}")
    for extra in ([], ["--without-pip"]):
        argv = [str(python), "-m", "venv", *extra, str(target)]
        try:
            proc = subprocess.run(argv, env=passed_environment(), capture_output=True, text=True, timeout=VENV_SECONDS,
                                  check=False, stdin=subprocess.DEVNULL, cwd=str(job.workspace.root))  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            raise StepError(f"{python} could not create a virtual environment: {exc}") from None
        if proc.returncode == 0:
            if extra:
                run.warning(f"{python} has no ensurepip: `pip` is not available (install its venv package, "
                            f"e.g. python{version.rsplit('.', 1)[0]}-venv)")  # fmt: skip
            return target
    raise StepError(f"{python} could not create a virtual environment: {proc.stderr.strip()[-500:]}")


def use_python_version(step: StepSpec, job: JobState, run: StepRun) -> str:
    spec = step_input(job, step, "versionSpec", "3.x").strip()
    add_to_path = input_flag(job, step, "addToPath", True)
    own = sys.version_info[:3]
    if version_matches(spec, own):
        job.variables.put("pythonLocation", sys.prefix)
        job.log.write(step, f"Using Python {_shown(own)} ({sys.executable}), the agent's, which satisfies "
                      f"versionSpec '{spec}'")  # fmt: skip
        return SUCCEEDED
    found = installed_pythons(job)
    matching = [(version, path) for version, path in found if version_matches(spec, version)]
    if not matching:
        versions = ", ".join(sorted({_shown(version) for version, _ in found} | {_shown(own)})) or "none"
        raise StepError(
            f"Python {spec} is not installed on this agent (found: {versions}); the mlyard agent does not "
            "download Python: install it on the agent's machine or change versionSpec"
        )
    version, python = matching[0]
    location = _virtual_environment(job, step, run, python, _shown(version))
    job.variables.put("pythonLocation", str(location))
    if add_to_path:
        job.prepend_path.insert(0, str(location / "bin"))
    job.log.write(step, f"Using Python {_shown(version)} ({python}), which satisfies versionSpec '{spec}'"
                  + (f"; {location / 'bin'} is first on PATH" if add_to_path else ""))  # fmt: skip
    return SUCCEEDED
