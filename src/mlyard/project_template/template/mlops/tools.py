"""Install the Python tools a pipeline step needs, from this project's own pyproject.toml.

    python mlops/tools.py test mlops        # [project.dependencies] + the `test` and `mlops` groups
    python mlops/tools.py --only mlops      # only the `mlops` group (databricks-sdk, mlflow)
    python mlops/tools.py --check test      # say what is missing, install nothing (exit 1 if anything is)

Only requirements that the step's Python does not satisfy yet are installed, so an agent that already has
them (an offline one included) never touches the network; a fresh hosted agent installs them from its
package index. When that Python's site-packages is not writable (a read-only system Python), the missing
requirements go into a virtual environment under the pipeline's workspace that sees the same packages,
and its bin/ is put first on PATH for the following steps (`##vso[task.prependpath]`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
except ImportError:  # pip vendors packaging: every Python with pip has it
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement  # type: ignore[no-redef]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
MAX_REQUIREMENTS = 500
PIP_TIMEOUT = 1800  # seconds for one pip install


def requirements(pyproject: Path, groups: list[str], *, only: bool) -> list[str]:
    """The requirement strings of the project (unless `only`) and of each optional-dependency group."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    extras = project.get("optional-dependencies", {})
    unknown = [group for group in groups if group not in extras]
    if unknown:
        known = ", ".join(sorted(extras)) or "none"
        raise SystemExit(f"{pyproject}: no optional-dependency group {unknown[0]!r} (groups: {known})")
    found = [] if only else list(project.get("dependencies", []))
    for group in groups:
        found.extend(extras[group])
    if len(found) > MAX_REQUIREMENTS:
        raise SystemExit(f"{pyproject}: more than {MAX_REQUIREMENTS} requirements")
    return list(dict.fromkeys(found))


def missing(wanted: list[str]) -> list[str]:
    """The requirements this Python does not satisfy (not installed, or a version outside the range)."""
    result = []
    for text in wanted:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise SystemExit(f"pyproject.toml: invalid requirement {text!r}: {exc}") from None
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            result.append(text)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            result.append(text)
    return result


def writable_site() -> bool:
    purelib = Path(sysconfig.get_paths()["purelib"])
    return os.access(purelib, os.W_OK)


def install(wanted: list[str], *, tools_dir: Path) -> Path | None:
    """pip-install `wanted`; returns the bin folder of a virtual environment when one was needed."""
    python, bin_dir = sys.executable, None
    if not writable_site():
        bin_dir = _overlay_venv(tools_dir)
        python = str(bin_dir / "python")
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *wanted]
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, timeout=PIP_TIMEOUT)
    return bin_dir


def _overlay_venv(folder: Path) -> Path:
    """A venv in `folder` whose Python also sees this interpreter's packages (a .pth file), pip included."""
    if not (folder / "pyvenv.cfg").is_file():
        venv.create(folder, with_pip=False, symlinks=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(folder), "platbase": str(folder)})["purelib"])
    purelib.mkdir(parents=True, exist_ok=True)
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (purelib / "_tools_parent.pth").write_text("".join(f"{p}\n" for p in parents), encoding="utf-8")
    return folder / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="optional-dependency groups of pyproject.toml")
    parser.add_argument("--only", action="store_true", help="the groups only, not [project.dependencies]")
    parser.add_argument("--check", action="store_true", help="only say what is missing")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    args = parser.parse_args(argv)
    wanted = requirements(args.pyproject, args.groups, only=args.only)
    absent = missing(wanted)
    if not absent:
        print(f"all {len(wanted)} requirements are already installed: nothing to install")
        return 0
    print(f"missing: {', '.join(absent)}")
    if args.check:
        return 1
    workspace = os.environ.get("PIPELINE_WORKSPACE") or os.environ.get("AGENT_TEMPDIRECTORY") or "."
    bin_dir = install(absent, tools_dir=Path(workspace) / "_tools" / "venv")
    if bin_dir is not None:
        print(f"##vso[task.prependpath]{bin_dir}")
    still = missing(wanted) if bin_dir is None else []
    if still:
        print(f"##vso[task.logissue type=error]still missing after pip install: {', '.join(still)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
