"""Pipeline files as they are in a commit: load, compile, and decide triggers from the pushed YAML."""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlyard.archives import UnsafeEntry
from mlyard.ci.host import Host
from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.git import repos as git
from mlyard.pipelines import Pipeline, PipelineError, Plan, compile_pipeline, load_pipeline


def bare_repo(platform: Host, repo: str) -> Path:
    return git.repo_path(platform.settings.repos_dir, repo)


def resolve_commit(platform: Host, repo: str, rev: str) -> str:
    sha = git.resolve(bare_repo(platform, repo), rev)
    if sha is None:
        raise NotFound(f"no commit {rev!r} in repository {repo!r}")
    return sha


def read_yaml(platform: Host, repo: str, commit: str, yaml_path: str) -> str:
    data = git.read_file(bare_repo(platform, repo), commit, yaml_path)
    if data is None:
        raise NotFound(f"{yaml_path} does not exist in repository {repo!r} at {commit[:10]}")
    return data.decode("utf-8", "replace")


def load_at(platform: Host, repo: str, commit: str, yaml_path: str) -> Pipeline:
    """The pipeline file as it is in `commit` (no templates resolved yet)."""
    text = read_yaml(platform, repo, commit, yaml_path)
    return load_pipeline(text, name=yaml_path)


class RepoContentError(InvalidInput):
    """The files of a commit cannot be read safely (an absolute or outside symlink, a missing object)."""


@contextmanager
def tree_at(platform: Host, repo: str, commit: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlyard-tree-") as tmp:
        try:
            git.export_tree(bare_repo(platform, repo), commit, Path(tmp))
        except UnsafeEntry as exc:
            raise RepoContentError(
                f"cannot read the files of repository {repo!r} at {commit[:10]}: {_unsafe(exc)}; "
                "remove the link or make it point inside the repository"
            ) from None
        except tarfile.TarError:
            raise RepoContentError(
                f"cannot read the files of repository {repo!r} at {commit[:10]}: the archive of the commit "
                "is unreadable"
            ) from None
        except OperationFailed:
            raise RepoContentError(
                f"cannot read the files of repository {repo!r} at {commit[:10]}: git archive failed "
                "(an object of the commit is missing or unreadable)"
            ) from None
        yield Path(tmp)


def _unsafe(exc: UnsafeEntry) -> str:
    """What is wrong with a file of the commit (never naming the server's temporary folder)."""
    return {
        "absolute link": f"{exc.name!r} is a link to an absolute path",
        "outside link": f"{exc.name!r} is a link pointing outside the repository",
        "outside path": f"{exc.name!r} is outside the repository",
    }.get(exc.problem, f"{exc.name!r} is a special file that cannot be extracted")


def compile_at(
    platform: Host,
    repo: str,
    commit: str,
    yaml_path: str,
    *,
    parameters: Mapping[str, Any],
    variables: Mapping[str, Any],
    context: Mapping[str, Any],
    stop: Callable[[], bool] | None = None,
) -> Plan:
    """Compile the pipeline of `commit` with its templates from the same commit (`stop`: see compile_pipeline)."""
    with tree_at(platform, repo, commit) as root:
        file = root / yaml_path
        if not file.resolve().is_relative_to(root.resolve()) or not file.is_file():
            raise InvalidInput(f"{yaml_path} does not exist in repository {repo!r} at {commit[:10]}")
        try:
            pipeline = load_pipeline(file, repo_root=root)
            return compile_pipeline(pipeline, parameters, variables, context, repo_root=root, stop=stop)
        except PipelineError as exc:  # name files as they are in the repo, not in the temporary folder
            prefix = f"{root}/"
            raise PipelineError([replace(d, file=d.file.removeprefix(prefix)) for d in exc.diagnostics]) from None
