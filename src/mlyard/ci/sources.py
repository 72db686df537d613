"""Pipeline files as they are in a commit: load, compile, and decide triggers from the pushed YAML."""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlyard.archives import UnsafeEntry
from mlyard.ci.host import Host
from mlyard.errors import InvalidInput, NotFound, OperationFailed
from mlyard.git import repos as git
from mlyard.pipelines import Diagnostic, Pipeline, PipelineError, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.resources import CONTAINER_ENGINE_NEEDED, RepositoryResource


def bare_repo(platform: Host, repo: str) -> Path:
    return git.repo_path(platform.settings.repos_dir, repo)


def resolve_commit(platform: Host, repo: str, rev: str) -> str:
    sha = git.resolve(bare_repo(platform, repo), rev)
    if sha is None:
        raise NotFound(f"no commit {rev!r} in repository {repo!r}")
    return sha


_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_KNOWN_MAX, _KNOWN_MAX_BYTES = 128, 512 * 1024  # files of commits kept (a commit's files never change)
_known: OrderedDict[tuple[str, str, str], tuple[bytes | None, str | None, bool | None]] = OrderedDict()
_known_lock = threading.Lock()


def _commit_file(
    path: Path, commit: str, file_path: str, *, links: bool = False
) -> tuple[bytes | None, str | None, bool | None]:
    """(content as `git.read_file` gives it, mode as `git.entry_mode` gives it, whether the commit's links are
    safe) of `file_path` in `commit`, remembered for full commit ids (runs compile the same files again: no git
    round trip then). `links`: also check the links of the commit (see git.check_links; an unsafe link raises
    UnsafeEntry, which is not remembered)."""
    key = (str(path), commit, file_path)
    with _known_lock:
        entry = _known.get(key)
        if entry is not None:
            _known.move_to_end(key)
    if entry is None:
        entry = (git.read_file(path, commit, file_path), git.entry_mode(path, commit, file_path), None)
    if links and entry[2] is None:
        entry = (entry[0], entry[1], git.check_links(path, commit))
    data, mode, _ = entry
    if _FULL_SHA.match(commit) and data is not None and mode is not None and len(data) <= _KNOWN_MAX_BYTES:
        with _known_lock:
            _known[key] = entry
            _known.move_to_end(key)
            while len(_known) > _KNOWN_MAX:
                _known.popitem(last=False)
    return entry


def read_yaml(platform: Host, repo: str, commit: str, yaml_path: str) -> str:
    data, _, _ = _commit_file(bare_repo(platform, repo), commit, yaml_path)
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
            raise _unreadable(repo, commit, exc) from None
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


def _unreadable(repo: str, commit: str, exc: UnsafeEntry) -> RepoContentError:
    return RepoContentError(
        f"cannot read the files of repository {repo!r} at {commit[:10]}: {_unsafe(exc)}; "
        "remove the link or make it point inside the repository"
    )


def _unsafe(exc: UnsafeEntry) -> str:
    """What is wrong with a file of the commit (never naming the server's temporary folder)."""
    return {
        "absolute link": f"{exc.name!r} is a link to an absolute path",
        "outside link": f"{exc.name!r} is a link pointing outside the repository",
        "outside path": f"{exc.name!r} is outside the repository",
    }.get(exc.problem, f"{exc.name!r} is a special file that cannot be extracted")


class ContainerEngineMissing(InvalidInput):
    """A container job, and no container engine to run it (mlyard has none built in)."""


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
    resource_variables: Callable[[Pipeline], Mapping[str, str]] | None = None,
) -> Plan:
    """Compile the pipeline of `commit` with its templates from the same commit (`stop`: see compile_pipeline).

    ``resource_variables`` gives the variables of the pipeline's pipeline resources (their runs) once the
    pipeline is loaded; they are added to the run's variables.

    The repository resources (``resources.repositories``) are read at their ``ref`` (default: their default
    branch) as the run starts; the plan records the commit of each, which its ``checkout: alias`` steps use.
    """
    with ExitStack() as stack:
        lone = _lone_file(platform, repo, commit, yaml_path, parameters)
        root = stack.enter_context(tree_at(platform, repo, commit) if lone is None else _one_file_tree(yaml_path, lone))
        file = root / yaml_path
        if not file.resolve().is_relative_to(root.resolve()) or not file.is_file():
            raise InvalidInput(f"{yaml_path} does not exist in repository {repo!r} at {commit[:10]}")
        prefixes = {f"{root}/": ""}
        try:
            pipeline = load_pipeline(file, repo_root=root)
            pinned = _pin_repositories(platform, pipeline.resources.repositories, pipeline.file)
            folders = _Exports(platform, stack, pinned, prefixes)
            if resource_variables is not None:
                variables = {**resource_variables(pipeline), **variables}
            plan = compile_pipeline(
                pipeline, parameters, variables, context, repo_root=root, stop=stop, repositories=folders
            )
            inline = plan.repositories[len(pinned) :]  # checkout: git://Project/Repo@ref
            pinned += _pin_repositories(platform, inline, pipeline.file)
        except PipelineError as exc:  # name files as they are in the repos, not in the temporary folders
            raise PipelineError([_renamed(d, prefixes) for d in exc.diagnostics]) from None
    containers = [(job.name, job.container) for job in plan.jobs if job.container]
    if containers:
        name, image = containers[0]
        raise ContainerEngineMissing(f"job '{name}' runs in container '{image}': {CONTAINER_ENGINE_NEEDED}")
    return replace(plan, repositories=pinned)


_CLEAN_PATH = re.compile(r"^(?:[A-Za-z0-9_@+-][A-Za-z0-9_.@+ -]*/)*[A-Za-z0-9_@+-][A-Za-z0-9_.@+ -]*$")


def _lone_file(platform: Host, repo: str, commit: str, yaml_path: str, parameters: Mapping[str, Any]) -> bytes | None:
    """The pipeline file's bytes when compiling it can read no other file of the commit, else None.

    A template is named by a ``template:`` key (``extends:`` too), or by a key or value a ``${{ }}``
    expression builds (from text or parameters): a file with neither the word "template" nor ``${{`` and
    runtime parameters without "template" reads no template. Only a plain file at a plain path (no link,
    no ``..``) qualifies, so it is what exporting the commit would have given. Repository resources are
    exported as before, when a template needs them."""
    if not _CLEAN_PATH.match(yaml_path) or "template" in json.dumps(parameters, default=str).lower():
        return None
    path = bare_repo(platform, repo)
    data, mode, _ = _commit_file(path, commit, yaml_path)
    if mode not in ("100644", "100755"):
        return None
    if data is None or b"${{" in data or b"template" in data.lower() or b"\\" in data:  # no escaped names
        return None
    try:  # a link out of the repository fails the run as when the files are exported
        _, _, checked = _commit_file(path, commit, yaml_path, links=True)
    except UnsafeEntry as exc:
        raise _unreadable(repo, commit, exc) from None
    return data if checked else None


@contextmanager
def _one_file_tree(yaml_path: str, data: bytes) -> Iterator[Path]:
    """A folder holding only the pipeline file, where tree_at would have put it."""
    with tempfile.TemporaryDirectory(prefix="mlyard-tree-") as tmp:
        file = Path(tmp) / yaml_path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        yield Path(tmp)


class _Exports(Mapping[str, Path]):
    """The files of each pinned repository resource, exported (with tree_at's checks) when a template first
    needs them; the temporary folders live as long as `stack`."""

    def __init__(
        self, platform: Host, stack: ExitStack, pinned: tuple[RepositoryResource, ...], prefixes: dict[str, str]
    ) -> None:
        self.platform, self.stack, self.prefixes = platform, stack, prefixes
        self.pinned = {resource.alias: resource for resource in pinned}
        self.roots: dict[str, Path] = {}

    def __getitem__(self, alias: str) -> Path:
        if alias not in self.roots:
            resource = self.pinned[alias]
            assert resource.commit is not None
            root = self.stack.enter_context(tree_at(self.platform, resource.repo, resource.commit))
            self.prefixes[f"{root}/"] = f"@{alias}"
            self.roots[alias] = root
        return self.roots[alias]

    def __iter__(self) -> Iterator[str]:
        return iter(self.pinned)

    def __len__(self) -> int:
        return len(self.pinned)

    def __contains__(self, alias: object) -> bool:
        return alias in self.pinned


def _renamed(diagnostic: Diagnostic, prefixes: Mapping[str, str]) -> Diagnostic:
    for prefix, alias in prefixes.items():
        if diagnostic.file.startswith(prefix):
            return replace(diagnostic, file=diagnostic.file.removeprefix(prefix) + alias)
    return diagnostic


def _pin_repositories(
    platform: Host, resources: tuple[RepositoryResource, ...], file: str
) -> tuple[RepositoryResource, ...]:
    """Each repository resource with the commit its ref names now; every problem at its position."""
    pinned: list[RepositoryResource] = []
    problems: list[Diagnostic] = []
    for resource in resources:
        mark = resource.mark
        where = (mark.file, mark.line, mark.column) if mark else (file, 1, 1)
        path = bare_repo(platform, resource.repo)
        ref = resource.ref or "HEAD"
        sha = git.resolve(path, ref) if path.is_dir() else None
        if not path.is_dir():
            message = (
                f"repository '{resource.name}' is not hosted by this mlyard server (no repository "
                f"'{resource.repo}'; a name maps to the repository named by its last segment): push it first"
            )
        elif sha is None:
            message = f"repository '{resource.name}' has no branch or tag '{resource.ref}' (ref)"
        else:
            pinned.append(replace(resource, commit=sha))
            continue
        what = "checkout" if resource.alias.startswith("git://") else f"resources.repositories.{resource.alias}"
        problems.append(Diagnostic(*where, what, message))
    if problems:
        raise PipelineError(problems)
    return tuple(pinned)
