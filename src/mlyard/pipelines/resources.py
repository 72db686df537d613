"""``resources:``: other repositories, pipelines and containers a pipeline uses ("resources" in the
YAML schema reference), parsed into typed declarations with their positions.

Repositories are hosted by this mlyard server and referenced by name. Azure names a repository
``Project/Repo`` (``type: git``) or ``owner/repo`` (``type: github``); mlyard has no projects or owners,
so a name maps to the mlyard repository named by its **last path segment, lower-cased** (``Project/Repo``
-> ``repo``; mlyard repository names are lower-case, Azure's are case-insensitive).
``ref`` is a branch (``main`` or ``refs/heads/main``) or a tag (``refs/tags/v1``); none means the
repository's default branch.

A pipeline resource's ``source`` names an mlyard pipeline, again by the last segment of Azure's
``\\folder\\name`` form. Its ``trigger`` makes this pipeline run when that pipeline's run succeeds.
Containers are validated; running a container job needs a container engine (none is built in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlyard.pipelines.patterns import ref_filter
from mlyard.pipelines.schema import describe, join_path
from mlyard.pipelines.source import Mark, Reporter, mark_of

MAX_RESOURCES = 100  # of each kind, per pipeline
SELF = "self"
CONTAINER_ENGINE_NEEDED = "container jobs need a container engine, and none is configured on this mlyard server"
_ALIAS = re.compile(r"^[-_A-Za-z0-9]{1,100}$")  # Microsoft's schema: referenceName
_NAME = re.compile(r"^(?!.*\.\.)(?!.*\.git$)[a-z0-9][a-z0-9._-]{0,62}$")  # an mlyard repository name (names.py)
_KNOWN = ("repositories", "pipelines", "containers", "builds", "packages", "webhooks")
_REPOSITORY_KEYS = ("repository", "type", "name", "ref", "endpoint", "trigger", "checkoutOptions")
_PIPELINE_KEYS = ("pipeline", "source", "project", "version", "branch", "tags", "trigger")
_CONTAINER_KEYS = (
    "container", "image", "type", "endpoint", "env", "mapDockerSocket", "options", "ports", "volumes",
    "mountReadOnly", "trigger", "azureSubscription", "resourceGroup", "registry", "repository", "localImage",
)  # fmt: skip
CONTAINER_KEYS = frozenset(_CONTAINER_KEYS) - {"container", "trigger"}  # the keys of a job's `container:` mapping


@dataclass(frozen=True)
class RepositoryResource:
    """``- repository: alias``: ``repo`` is the mlyard repository (the last segment of ``name``)."""

    alias: str
    name: str
    repo: str
    type: str = "git"
    ref: str | None = None
    commit: str | None = None  # set by the server when a run starts: the version every job uses
    mark: Mark | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        document = {"repository": self.alias, "name": self.name, "type": self.type, "ref": self.ref}
        return document | ({"commit": self.commit} if self.commit else {})

    @classmethod
    def from_dict(cls, document: Any) -> RepositoryResource:
        name = str(document["name"])
        ref, commit = document.get("ref"), document.get("commit")
        return cls(str(document["repository"]), name, last_segment(name).lower(), str(document.get("type") or "git"),
                   None if ref is None else str(ref), None if commit is None else str(commit))  # fmt: skip


@dataclass(frozen=True)
class PipelineTrigger:
    """A completion trigger: branches of the source pipeline's run (include/exclude), stages that must
    have succeeded, tags the run must have (recorded; mlyard runs have no tags, so tags never match)."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, branch: str) -> tuple[bool, str]:
        """Whether a run of ``branch`` (``refs/heads/x`` or ``x``) fires the trigger, and why."""
        if self.tags:
            return False, f"the trigger needs tags ({', '.join(self.tags)}) and mlyard runs have no tags"
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        return ref_filter(self.include, self.exclude, tag=False).evaluate(ref, f"branch '{branch}'")


@dataclass(frozen=True)
class PipelineResource:
    """``- pipeline: alias``: ``pipeline`` is the mlyard pipeline (the last segment of ``source``)."""

    alias: str
    source: str
    pipeline: str
    branch: str | None = None
    trigger: PipelineTrigger | None = None
    mark: Mark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ContainerResource:
    alias: str
    image: str
    mark: Mark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Resources:
    repositories: tuple[RepositoryResource, ...] = ()
    pipelines: tuple[PipelineResource, ...] = ()
    containers: tuple[ContainerResource, ...] = ()
    warnings: tuple[str, ...] = ()  # what is valid Azure YAML but has no effect in mlyard

    def repository(self, alias: str) -> RepositoryResource | None:
        return next((r for r in self.repositories if r.alias == alias), None)

    def pipeline(self, alias: str) -> PipelineResource | None:
        return next((p for p in self.pipelines if p.alias == alias), None)

    def container(self, alias: str) -> ContainerResource | None:
        return next((c for c in self.containers if c.alias == alias), None)


def last_segment(name: str) -> str:
    """``Project/Repo`` -> ``Repo``; ``\\folder\\name`` -> ``name``."""
    return re.split(r"[\\/]", name.strip().strip("\\/"))[-1]


def parse_resources(tree: Any, reporter: Reporter) -> Resources:
    """The ``resources:`` of a pipeline file as written (every problem reported)."""
    if not isinstance(tree, dict) or tree.get("resources") is None:
        return Resources()
    value = tree["resources"]
    if isinstance(value, list):  # the old form `resources: [- repo: self]` names only this repository
        for index, item in enumerate(value):
            if not (isinstance(item, dict) and str(item.get("repo", "")).lower() == SELF):
                message = "in the list form of resources, only '- repo: self' is allowed; use resources.repositories"
                reporter.at(value, index, join_path("resources", index), message)
        return Resources()
    if not isinstance(value, dict):
        reporter.at(tree, "resources", "resources", f"expected a mapping, got {describe(value)}")
        return Resources()
    for key in value:
        if key not in _KNOWN:
            message = f"unknown key '{key}'; supported keys: {', '.join(_KNOWN[:3])}"
            reporter.at(value, key, join_path("resources", key), message)
        elif key in ("builds", "packages", "webhooks"):
            message = f"'{key}' resources are not supported by mlyard; supported: repositories, pipelines, containers"
            reporter.at(value, key, join_path("resources", key), message)
    warnings = tuple(
        f"resources.{key}: '{item[kind]}' has a trigger, which mlyard ignores: pushes to other repositories and "
        "new container images do not run pipelines"
        for key, kind in (("repositories", "repository"), ("containers", "container"))
        for item in _list(value.get(key))
        if isinstance(item, dict) and str(item.get("trigger", "none")).lower() not in ("none", "false")
    )
    return Resources(
        tuple(_items(value, "repositories", "repository", _REPOSITORY_KEYS, _repository, reporter)),
        tuple(_items(value, "pipelines", "pipeline", _PIPELINE_KEYS, _pipeline, reporter)),
        tuple(_items(value, "containers", "container", _CONTAINER_KEYS, _container, reporter)),
        warnings,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(section: Any, key: str, kind: str, keys: tuple[str, ...], build: Any, reporter: Reporter) -> list[Any]:
    items = section.get(key)
    path = join_path("resources", key)
    if items is None:
        return []
    if not isinstance(items, list):
        reporter.at(section, key, path, f"expected a list of {key}, got {describe(items)}")
        return []
    if len(items) > MAX_RESOURCES:
        reporter.at(section, key, path, f"more than {MAX_RESOURCES} {key}: declare fewer")
        return []
    result: list[Any] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        item_path = join_path(path, index)
        if not isinstance(item, dict) or kind not in item:
            reporter.at(items, index, item_path, f"expected a mapping with '{kind}: ALIAS', got {describe(item)}")
            continue
        if kind == "repository" and item[kind] == SELF:  # options of this repository (old form): nothing to add
            continue
        problems = len(reporter.diagnostics)
        for name in item:
            if name not in keys:
                message = f"unknown key '{name}'; supported keys: {', '.join(keys)}"
                reporter.at(item, name, join_path(item_path, name), message)
        alias = item[kind]
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == SELF:
            message = f"invalid alias {describe(alias)}: use letters, digits, '-' and '_'"
            message += "" if alias != SELF else " ('self' is this repository)"
            reporter.at(item, kind, join_path(item_path, kind), message)
        elif alias in seen:
            reporter.at(item, kind, join_path(item_path, kind), f"{kind} '{alias}' is declared twice")
        else:
            seen.add(alias)
        built = build(item, item_path, reporter)
        if built is not None and len(reporter.diagnostics) == problems:
            result.append(built)
    return result


def _string(item: Any, key: str, path: str, reporter: Reporter, *, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        if required:
            reporter.at(item, key if key in item else None, join_path(path, key), f"'{key}' is required")
        return None
    if isinstance(value, dict | list):
        reporter.at(item, key, join_path(path, key), f"expected a string, got {describe(value)}")
        return None
    return str(value)


def _repository(item: Any, path: str, reporter: Reporter) -> RepositoryResource | None:
    name = _string(item, "name", path, reporter, required=True)
    kind = _string(item, "type", path, reporter) or "git"
    ref = _string(item, "ref", path, reporter)
    _string(item, "endpoint", path, reporter)
    if name is None:
        return None
    for key, value in (("name", name), ("ref", ref or "")):
        if "${{" in value or "$(" in value or "$[" in value:
            message = f"expressions in a repository's '{key}' are not supported by mlyard; write the {key} out"
            reporter.at(item, key, join_path(path, key), message)
            return None
    repo = last_segment(name).lower()
    if not _NAME.match(repo):
        message = f"repository name '{name}' does not name an mlyard repository (its last segment '{repo}' is invalid)"
        reporter.at(item, "name", join_path(path, "name"), message)
        return None
    return RepositoryResource(str(item["repository"]), name, repo, kind, ref, mark=mark_of(item, "repository"))


def _pipeline(item: Any, path: str, reporter: Reporter) -> PipelineResource | None:
    source = _string(item, "source", path, reporter, required=True)
    branch = _string(item, "branch", path, reporter)
    trigger = _trigger(item.get("trigger"), item, join_path(path, "trigger"), reporter) if "trigger" in item else None
    if source is None:
        return None
    alias = str(item["pipeline"])
    return PipelineResource(alias, source, last_segment(source), branch, trigger, mark_of(item, "pipeline"))


def _names(value: Any, owner: Any, key: str, path: str, reporter: Reporter) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, dict | list) for item in items):
        reporter.at(owner, key, path, "expected a name or a list of names")
        return ()
    return tuple(str(item) for item in items if item is not None)


def _trigger(value: Any, item: Any, path: str, reporter: Reporter) -> PipelineTrigger | None:
    """``trigger: true`` / ``none`` / ``{enabled, branches, stages, tags}`` ("pipeline completion triggers")."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "false")) or value is False:
        return None
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return PipelineTrigger()
    if not isinstance(value, dict):
        reporter.at(item, "trigger", path, f"expected true, none or a mapping, got {describe(value)}")
        return None
    for key in value:
        if key not in ("enabled", "branches", "stages", "tags"):
            message = f"unknown key '{key}'; supported keys: enabled, branches, stages, tags"
            reporter.at(value, key, join_path(path, key), message)
    if str(value.get("enabled", True)).lower() == "false":
        return None
    branches = value.get("branches")
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    if isinstance(branches, dict):
        for key in branches:
            if key not in ("include", "exclude"):
                message = f"unknown key '{key}'; supported keys: include, exclude"
                reporter.at(branches, key, join_path(path, f"branches.{key}"), message)
        where = join_path(path, "branches")
        include = _names(branches.get("include"), branches, "include", f"{where}.include", reporter) or include
        exclude = _names(branches.get("exclude"), branches, "exclude", f"{where}.exclude", reporter)
    elif branches is not None:
        include = _names(branches, value, "branches", join_path(path, "branches"), reporter) or include
    stages = _names(value.get("stages"), value, "stages", join_path(path, "stages"), reporter)
    tags = _names(value.get("tags"), value, "tags", join_path(path, "tags"), reporter)
    return PipelineTrigger(include, exclude, stages, tags)


def _container(item: Any, path: str, reporter: Reporter) -> ContainerResource | None:
    image = _string(item, "image", path, reporter, required=True)
    return ContainerResource(str(item["container"]), image, mark_of(item, "container")) if image else None


INLINE = "git://"


def inline_repository(value: str, mark: Mark | None = None) -> RepositoryResource | None:
    """``git://Project/Repo[@ref]`` ("Repository declared using inline syntax"), its alias the text itself;
    None when it does not name an mlyard repository."""
    name, _, ref = value[len(INLINE) :].partition("@")
    repo = last_segment(name).lower() if name.strip("/") else ""
    if not value.startswith(INLINE) or not _NAME.match(repo) or (_ and not ref):
        return None
    return RepositoryResource(value, name, repo, "git", ref or None, mark=mark)


def check_checkouts(steps: Any, path: str, resources: Resources, reporter: Reporter) -> list[RepositoryResource]:
    """``checkout: alias`` names ``self``, ``none``, a declared repository resource or ``git://Project/Repo``;
    returns the repositories declared inline."""
    inline: list[RepositoryResource] = []
    for index, item in enumerate(steps if isinstance(steps, list) else ()):
        if not isinstance(item, dict) or "checkout" not in item:
            continue
        alias = str(item["checkout"])
        if alias.lower() in (SELF, "none") or resources.repository(alias) is not None:
            continue
        if alias.startswith(INLINE):
            found = inline_repository(alias, mark_of(item, "checkout"))
            if found is not None:
                inline.append(found)
            else:
                message = (f"checkout '{alias}': write an inline repository as git://Project/Repo or "
                           "git://Project/Repo@ref, its last segment an mlyard repository name")  # fmt: skip
                reporter.at(item, "checkout", join_path(join_path(path, index), "checkout"), message)
            continue
        declared = ", ".join(r.alias for r in resources.repositories) or "none"
        message = (f"checkout '{alias}': no repository resource '{alias}'; use self, none or a repository "
                   f"declared under resources.repositories (declared: {declared})")  # fmt: skip
        reporter.at(item, "checkout", join_path(join_path(path, index), "checkout"), message)
    return inline


def check_downloads(steps: Any, path: str, resources: Resources, reporter: Reporter) -> None:
    """``download: alias`` names ``current``, ``none`` or a declared pipeline resource."""
    for index, item in enumerate(steps if isinstance(steps, list) else ()):
        if not isinstance(item, dict) or "download" not in item:
            continue
        alias = str(item["download"])
        if alias in ("current", "none") or resources.pipeline(alias) is not None:
            continue
        declared = ", ".join(p.alias for p in resources.pipelines) or "none"
        message = (f"download '{alias}': no pipeline resource '{alias}'; use current, none or a pipeline "
                   f"declared under resources.pipelines (declared: {declared})")  # fmt: skip
        reporter.at(item, "download", join_path(join_path(path, index), "download"), message)


def container_image(job: Any, path: str, resources: Resources, reporter: Reporter) -> str | None:
    """The image of a job's ``container:`` (a container resource's alias, an image, or ``{image: ...}``)."""
    value = job.get("container")
    if value is None or value == "":
        return None
    if isinstance(value, dict) and "alias" in value and "image" not in value:
        value = str(value["alias"])
    if isinstance(value, dict):
        image = value.get("image")
        if image is None or image == "":
            reporter.at(job, "container", join_path(path, "container"), "a container needs an 'image'")
            return None
        return str(image)
    declared = resources.container(str(value))
    return declared.image if declared is not None else str(value)
