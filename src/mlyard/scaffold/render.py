"""Render the ML project template with copier.

The template is a copier template (``copier.yml`` with ``_subdirectory: template``). It is shipped in
the package (``TEMPLATE_DIR``) and pushed to the platform's ``ml-project-template`` repository, from
which the creator renders it, so an organisation customises its template in git. The rendered
project keeps its answers in ``.copier-answers.yml`` for ``copier update``.
"""

from __future__ import annotations

import contextvars
import functools
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlyard.errors import InvalidInput, OperationFailed

TEMPLATE_DIR = Path(__file__).parents[1] / "project_template"
ANSWERS_FILE = ".copier-answers.yml"

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
_URL_CREDENTIALS = re.compile(r"(?<=//)[^/@\s]+@")
_CLONE_FOLDER = re.compile(r"^.*/copier\._vcs\.clone\.[^/]+/")  # copier's temporary clone of a template repository
# True while render_project renders into a folder that no git repository ignoring file modes holds (_file_modes_kept)
_MODES_KEPT: contextvars.ContextVar[bool] = contextvars.ContextVar("mlyard_render_file_modes_kept", default=False)


def package_name_for(repo: str) -> str:
    """The Python package name of a repository: '-' and '.' become '_', 'p_' before a leading digit."""
    name = _NOT_IDENTIFIER.sub("_", repo.replace("-", "_").replace(".", "_"))
    return f"p_{name}" if name[:1].isdigit() else name


def default_answers(
    repo_name: str,
    *,
    environment: str = "dev",
    demo: bool = False,
    default_branch: str = "master",
    problem_type: str = "binary",
) -> dict[str, Any]:
    """The answers the creator gives the template: the model is named like the repository.
    `problem_type` is binary, multiclass or regression (the template refuses any other)."""
    return {
        "repo_name": repo_name,
        "model_name": repo_name,
        "package_name": package_name_for(repo_name),
        "environment": environment,
        "problem_type": problem_type,
        "demo": demo,
        "default_branch": default_branch,
    }


def render_project(
    template: str | Path, destination: Path, answers: Mapping[str, Any], *, vcs_ref: str | None = None
) -> Path:
    """Render `template` (a folder holding ``copier.yml``, or a git URL or path of a repository
    holding it at its root) into `destination` with `answers`; unanswered questions take their
    defaults. `vcs_ref` picks a git tag or commit (default: the latest tag, else HEAD).

    Returns `destination`. Raises InvalidInput when an answer breaks a rule of the template, and
    OperationFailed when the template cannot be read or rendered.
    """
    import copier
    from copier.errors import CopierAnswersInterrupt, CopierError
    from jinja2 import TemplateError

    source = _without_credentials(str(template))  # for messages: the creator's URL carries a token
    _check_local_template(template)
    destination = Path(destination)
    _ask_git_once_for_file_modes()
    kept = _MODES_KEPT.set(_file_modes_kept(destination))
    try:
        copier.run_copy(
            src_path=str(template),
            dst_path=destination,
            data=dict(answers),
            defaults=True,
            overwrite=True,
            unsafe=False,
            quiet=True,
            vcs_ref=vcs_ref,
        )
    except CopierAnswersInterrupt as error:
        raise InvalidInput(f"invalid answer for the project template {source}: {_first_line(error)}") from error
    except (CopierError, TemplateError, OSError, RuntimeError) as error:
        # CopierError before ValueError: copier's configuration errors are ValueErrors too.
        raise OperationFailed(f"could not render the project template {source}: {_describe(error)}") from error
    except ValueError as error:  # an answer refused by a validator of copier.yml, or a missing one
        raise InvalidInput(f"invalid answer for the project template {source}: {_first_line(error)}") from error
    finally:
        _MODES_KEPT.reset(kept)
    answers_file = destination / ANSWERS_FILE
    if not answers_file.is_file():
        raise OperationFailed(
            f"the project template {source} did not write {ANSWERS_FILE}: it needs a file named "
            "'{{ _copier_conf.answers_file }}.jinja' so that projects can be updated"
        )
    _remove_credentials(answers_file)
    return destination


def _file_modes_kept(destination: Path) -> bool:
    """Whether git keeps file modes wherever `destination` is: it is in no git work tree, or in one whose
    `core.fileMode` is not false (the Unix default). One `git config` in its nearest existing folder, as copier
    asks in the destination (git finds the repository upwards, so a new folder answers as its parent)."""
    folder = destination.absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        answer = subprocess.run(["git", "config", "--type=bool", "--get", "core.fileMode"], cwd=folder,
                                capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False  # copier then asks for each file, and handles git's absence or failure itself
    return answer.returncode != 0 or answer.stdout.strip() != "false"


@functools.cache
def _ask_git_once_for_file_modes() -> None:
    """copier (9.19) asks git after each file it renders whether the destination's repository ignores file
    modes (`git config core.fileMode`: then it re-stages an executable bit in that repository's index, and
    otherwise does nothing): a git process per file, 35 for the demo project, 0.13 s of a 0.5-0.65 s render.
    The answer cannot change during a render: render_project asks once (_file_modes_kept), and while it
    renders into a folder where git keeps file modes, copier's per-file step is skipped, as copier itself
    would after asking. Other renders (copier update, a repository ignoring modes) are copier's own. A copier
    without that step is left as it is."""
    from copier import _main

    worker = getattr(_main, "Worker", None)
    original: Callable[..., None] | None = getattr(worker, "_sync_git_index_executable_bit", None)
    if worker is None or original is None:
        return

    @functools.wraps(original)
    def sync(self: Any, *args: Any, **kwargs: Any) -> None:
        if not _MODES_KEPT.get():
            original(self, *args, **kwargs)

    worker._sync_git_index_executable_bit = sync


def _remove_credentials(answers_file: Path) -> None:
    """Keep a token in the template's URL out of the project: `_src_path` is committed with it."""
    text = answers_file.read_text(encoding="utf-8")
    lines = [_without_credentials(line) if line.startswith("_src_path:") else line for line in text.splitlines(True)]
    if "".join(lines) != text:
        answers_file.write_text("".join(lines), encoding="utf-8")


def _check_local_template(template: str | Path) -> None:
    path = Path(template).expanduser()
    if isinstance(template, Path) or path.is_absolute() or str(template).startswith("."):
        if not path.exists():
            raise OperationFailed(f"the project template {template} does not exist")
        if path.is_dir() and not any((path / name).is_file() for name in ("copier.yml", "copier.yaml")):
            raise OperationFailed(f"{template} is not a project template: it has no copier.yml")


def _describe(error: BaseException) -> str:
    """The first line of the error, with the template file and line of a Jinja error."""
    text = _first_line(error)
    stderr = getattr(error, "stderr", None)  # a failed git command (plumbum's ProcessExecutionError)
    if isinstance(stderr, str) and stderr.strip():
        return f"{text}: {_without_credentials(stderr.strip().splitlines()[-1])}"
    filename, lineno = getattr(error, "filename", None), getattr(error, "lineno", None)
    if filename and lineno:
        return f"{_CLONE_FOLDER.sub('', str(filename))}:{lineno}: {text}"
    return text


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return _without_credentials(text.splitlines()[0])


def _without_credentials(text: str) -> str:
    """`text` with the user and password of every URL in it removed."""
    return _URL_CREDENTIALS.sub("", text)
