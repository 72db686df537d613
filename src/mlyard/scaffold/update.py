"""Bring the platform's current project template into a project with `copier update` (a local clone).

Trust: the platform's template is trusted, the project's ``.copier-answers.yml`` is data from its
repository. Copier renders the project's old template version from the answers' ``_src_path``; so
before copier reads the answers, ``_src_path`` is replaced by the platform's template (a local
clone the caller made) and ``_commit`` must be a plain git revision. Copier runs with the same
rules as `mlyard create` (no tasks, migrations or Jinja extensions: ``unsafe=False``), without the
user's copier settings file (which could add trusted sources or default answers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.scaffold.render import ANSWERS_FILE

ANSWERS_MAX_BYTES = 64 * 1024  # a project's answers file larger than this is refused
ANSWERS_MAX_KEYS = 200
MARKER_SCAN_MAX_BYTES = 1024 * 1024  # files larger than this are not searched for conflict markers
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")  # copier's inline markers
_COMMIT_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+/-]{0,199}$")
_SRC_PATH_LINE = re.compile(r"^_src_path:.*$", re.MULTILINE)


@dataclass(frozen=True)
class Answers:
    """A project's recorded answers: the template revision it was last rendered from, and the values."""

    commit: str
    src_path: str | None  # where the answers say the template is: reported, never used
    values: Mapping[str, Any]  # the answers to the template's questions (keys without a leading '_')


def read_answers(project: Path, *, where: str) -> Answers:
    """The answers of the project checked out in `project`; `where` names it in messages (repo and branch)."""
    import yaml

    path = project / ANSWERS_FILE
    if not path.is_file():
        raise NotFound(
            f"{where} has no {ANSWERS_FILE}: it was not rendered from the platform's template by `mlyard create` "
            "(or was created before the answers were recorded), so copier cannot tell which template version "
            f"it has; add {ANSWERS_FILE} to it (see docs/creator.md, 'Projects without answers'), then run "
            "`mlyard projects update` again"
        )
    if path.stat().st_size > ANSWERS_MAX_BYTES:
        raise InvalidInput(f"{where}: {ANSWERS_FILE} is larger than {ANSWERS_MAX_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise InvalidInput(f"{where}: {ANSWERS_FILE}{at} is not valid YAML: fix or restore the file") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data) or len(data) > ANSWERS_MAX_KEYS:
        raise InvalidInput(f"{where}: {ANSWERS_FILE} must be a mapping of at most {ANSWERS_MAX_KEYS} named answers")
    commit = _raw_scalar(path.read_text(encoding="utf-8"), "_commit")  # as written: a digits-only sha is no number
    if not isinstance(commit, str) or not _COMMIT_RE.match(commit):
        raise InvalidInput(
            f"{where}: {ANSWERS_FILE} has no valid _commit (the template revision the project was rendered "
            f"from, e.g. a commit sha of ml-project-template), got {commit!r}: set it to that commit"
        )
    src = data.get("_src_path")
    values = {key: value for key, value in data.items() if not key.startswith("_")}
    return Answers(commit=commit, src_path=src if isinstance(src, str) else None, values=values)


def _raw_scalar(text: str, key: str) -> str | None:
    """The text of top-level `key`'s scalar value as written (YAML would read `_commit: 0123456` as a number)."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return None
    for name, value in node.value:
        if isinstance(name, yaml.ScalarNode) and name.value == key and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    return None


def set_src_path(project: Path, template: str, *, answers: Answers | None = None) -> None:
    """Make `template` the answers file's `_src_path`, keeping the rest of the file as it is.

    The file's one `_src_path:` line is replaced (copier writes it so). When that does not give
    `template` back, the file is rewritten whole from `answers`, or, without them, it is an error.
    """
    import yaml

    path = project / ANSWERS_FILE
    text = path.read_text(encoding="utf-8")
    line = "_src_path: " + yaml.safe_dump(template, width=10_000).splitlines()[0]
    if len(_SRC_PATH_LINE.findall(text)) == 1:
        text = _SRC_PATH_LINE.sub(lambda _m: line, text)
    elif "_src_path" not in text:
        text = text.rstrip("\n") + "\n" + line + "\n"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    expected = {"_src_path": template, **({"_commit": answers.commit} if answers else {})}
    if not isinstance(data, dict) or any(data.get(key) != value for key, value in expected.items()):
        if answers is None:
            raise OperationFailed(f"could not set _src_path in {ANSWERS_FILE} as copier wrote it")
        text = yaml.safe_dump({"_commit": answers.commit, "_src_path": template, **answers.values}, sort_keys=False)
    path.write_text(text, encoding="utf-8")


def copier_update(project: Path) -> None:
    """`copier update` of the git work tree `project` to the HEAD of the template its answers name.

    Conflicts stay in the files as inline markers (and as unmerged paths in the index). Raises
    InvalidInput when a recorded answer breaks a rule of the current template, OperationFailed when
    copier cannot update.
    """
    import copier
    from copier.errors import CopierError
    from jinja2 import TemplateError

    try:
        copier.run_update(
            dst_path=project,
            defaults=True,  # questions the template added take their defaults
            overwrite=True,
            unsafe=False,
            skip_tasks=True,
            quiet=True,
            vcs_ref="HEAD",
            conflict="inline",
            settings=copier.Settings(),
        )
    except CopierError as error:  # before ValueError: copier's configuration errors are ValueErrors too
        raise OperationFailed(f"copier update failed: {_first_line(error)}") from error
    except (TemplateError, OSError, RuntimeError) as error:
        raise OperationFailed(f"copier update failed: {_first_line(error)}") from error
    except ValueError as error:  # an answer refused by a validator of the template's copier.yml
        raise InvalidInput(
            f"an answer in {ANSWERS_FILE} breaks a rule of the current template: {_first_line(error)}; "
            f"fix it in {ANSWERS_FILE} on the default branch and run `mlyard projects update` again"
        ) from error


def files_with_markers(project: Path, paths: Iterable[str]) -> list[str]:
    """The `paths` (relative to `project`) whose text holds copier's inline conflict markers."""
    found = []
    for rel in paths:
        path = project / rel
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MARKER_SCAN_MAX_BYTES:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        if any(marker in text for marker in CONFLICT_MARKERS):
            found.append(rel)
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
