"""`compile_pipeline`: expand templates and compile-time expressions, then build the checked :class:`Plan`.

Shortcuts as in "YAML schema reference": a pipeline with only ``jobs`` is one stage (``__default``), with
only ``steps`` one job (``Job``) in it. Stages depend on the previous stage unless ``dependsOn`` says
otherwise (``[]`` = none); jobs of a stage run in parallel unless ``dependsOn``. Conditions default
to ``succeeded()``; a custom condition replaces it ("Conditions").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlyard.pipelines.limits import DEFAULT_LIMITS, Budget, Limits, limit_error
from mlyard.pipelines.model import Environment, Job, Pipeline, Pool, Stage, Step, Variable, VariableEntry, VariableGroup
from mlyard.pipelines.parameters import resolve_parameters, text
from mlyard.pipelines.plan import Node, Plan, check_graph
from mlyard.pipelines.resources import (
    RepositoryResource,
    Resources,
    check_checkouts,
    check_downloads,
    container_image,
)
from mlyard.pipelines.schema import join_path, validate_tree
from mlyard.pipelines.source import Reporter, YMap, mark_of
from mlyard.pipelines.steps import build_steps, check_condition, flag, number
from mlyard.pipelines.strategy import expand_depends_on, legs
from mlyard.pipelines.templates import Expander, Scope

IMPLICIT_STAGE = "__default"
IMPLICIT_JOB = "Job"
_JOB_KEYS_AT_ROOT = (
    "pool", "workspace", "timeoutInMinutes", "cancelTimeoutInMinutes", "continueOnError", "strategy", "container",
)  # fmt: skip


def compile_pipeline(
    pipeline: Pipeline,
    parameters: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    repo_root: str | Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
    stop: Callable[[], bool] | None = None,
    repositories: Mapping[str, str | Path] | None = None,
) -> Plan:
    """The plan of one run of ``pipeline``.

    ``parameters``: runtime parameter values (strings are converted to the declared type);
    ``variables``: queue-time variables (added to the plan, not visible to ``${{ }}``, as in Azure);
    ``context``: predefined variables known at compile time (``Build.SourceBranch``, ...), visible to
    ``${{ variables.X }}`` with the variables defined in the YAML. Templates are read
    below ``repo_root`` (default: the git work tree holding the pipeline, else its folder).
    ``limits`` bound the expanded size and the compile time (see :mod:`mlyard.pipelines.limits`);
    ``stop``, asked now and then, ends the compilation early when it returns True (a canceled run).
    ``repositories``: the root folder of each repository resource (by alias) whose templates may be used
    (``template: x.yml@alias``), read only when a template needs it (the mapping may fetch on demand); a
    declared one missing here is an error only when a template needs it.
    Raises :class:`~mlyard.pipelines.errors.PipelineError` with every problem found.
    """
    values = resolve_parameters(pipeline, parameters or {})
    # Templates are relative to the pipeline file (for YAML text: to its name, or the working folder).
    root_file = Path(pipeline.file).resolve() if pipeline.file != "<pipeline>" else Path.cwd() / "<pipeline>"
    reporter = Reporter(pipeline.file)
    root = Path(repo_root) if repo_root is not None else default_repo_root(root_file)
    aliases = [r.alias for r in pipeline.resources.repositories]
    expander = Expander(reporter, root, Budget(pipeline.file, limits, stop=stop), aliases, repositories)
    # "Template expressions": only YAML and predefined variables, not those given when a run starts.
    known = {str(key): text(value) for key, value in (context or {}).items()}
    scope = Scope(str(root_file), values, known, {}, (str(root_file),))
    tree = expander.expand_pipeline(pipeline.tree, scope)
    expanded = not reporter.diagnostics
    reporter.unsupported.clear()  # what the expansion produced, not the files as written
    _check_expanded(tree, reporter)
    if reporter.diagnostics and expanded and isinstance(tree, YMap):
        _Builder(reporter, tree, pipeline.resources).check_graphs()  # nothing is missing: the graphs can be checked too
    reporter.raise_if_any()
    plan = _Builder(reporter, tree, pipeline.resources).plan(pipeline, values, variables or {})
    reporter.raise_if_any()
    _check_counts(plan, pipeline.file, limits)
    return plan


def _check_expanded(tree: Any, reporter: Reporter) -> None:
    """Check what the expansion produced, even when some of it failed: one run reports both.

    A place where the expansion failed gets that problem only (not also what its failure left behind).
    """
    failed = {(d.file, d.line, d.column) for d in reporter.diagnostics}
    checked = Reporter(reporter.file)
    validate_tree(tree, checked, raw=False)
    for diagnostic in checked.diagnostics:
        if (diagnostic.file, diagnostic.line, diagnostic.column) not in failed:
            reporter.diagnostics.append(diagnostic)
    for notice in checked.unsupported:
        if notice not in reporter.unsupported:
            reporter.unsupported.append(notice)


def _check_counts(plan: Plan, file: str, limits: Limits) -> None:
    jobs = [job for stage in plan.stages for job in stage.jobs]
    steps = sum(len(job.steps) for job in jobs)
    if len(jobs) > limits.jobs:
        raise limit_error(file, None, "", f"the plan has {len(jobs)} jobs, more than {limits.jobs} (limit: jobs)")
    if steps > limits.steps:
        raise limit_error(file, None, "", f"the plan has {steps} steps, more than {limits.steps} (limit: steps)")


compile = compile_pipeline


def default_repo_root(file: Path) -> Path:
    """The git work tree holding ``file`` (a folder with ``.git``), else the file's folder."""
    for folder in (file.parent, *file.parent.parents):
        if (folder / ".git").exists():
            return folder
    return file.parent


def parse_pool(value: Any) -> Pool | None:
    if value is None:
        return None
    if isinstance(value, dict):
        demands = value.get("demands") or ()
        demands = (demands,) if isinstance(demands, str) else tuple(text(d) for d in demands)
        vm_image = value.get("vmImage")
        return Pool(text(value["name"]) if value.get("name") else None, text(vm_image) if vm_image else None, demands)
    return Pool(name=text(value))


def parse_variables(value: Any) -> tuple[VariableEntry, ...]:
    if isinstance(value, dict):
        return tuple(Variable(str(name), text(item)) for name, item in value.items())
    entries: list[VariableEntry] = []
    for item in value or ():
        if not isinstance(item, dict):  # an empty entry (`- `) defines nothing
            continue
        if "group" in item:
            entries.append(VariableGroup(text(item["group"])))
        elif "name" in item:
            entries.append(Variable(text(item["name"]), text(item.get("value")), flag(item.get("readonly"))))
    return tuple(entries)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(text(item) for item in value if item is not None and text(item))
    return (text(value),) if text(value) else ()


def _job_kind(item: Any) -> str:
    return "deployment" if "deployment" in item else "job"


class _Builder:
    """Turns the expanded, validated tree into stages, jobs and steps; checks the graphs."""

    def __init__(self, reporter: Reporter, tree: YMap, resources: Resources) -> None:
        self.r = reporter
        self.tree = tree
        self.resources = resources
        self.inline: dict[str, RepositoryResource] = {}  # checkout: git://Project/Repo@ref
        self.pool = parse_pool(tree.get("pool"))
        self.steps_built: dict[int, tuple[Any, str, Step]] = {}  # steps by id of their item (build_steps)

    def plan(self, pipeline: Pipeline, values: Mapping[str, Any], given: Mapping[str, Any]) -> Plan:
        tree = self.tree
        stages = [self.stage(item, path, index) for index, (item, path) in enumerate(self.stage_items())]
        nodes = [Node(s.name, s.depends_on, mark, depends, path) for s, (mark, depends, path) in stages]
        check_graph(nodes, "stage", self.r)
        variables = parse_variables(tree.get("variables"))
        variables += tuple(Variable(str(name), text(value)) for name, value in given.items())
        run_name = text(tree["name"]) if tree.get("name") is not None else None
        unsupported = tuple(sorted(self.r.unsupported))
        return Plan(
            pipeline.name,
            tuple(s for s, _ in stages),
            variables,
            dict(values),
            run_name,
            pipeline.warnings,
            unsupported,
            (*self.resources.repositories, *self.inline.values()),
        )

    def stage_items(self) -> list[tuple[Any, str]]:
        tree = self.tree
        if "stages" in tree:
            stages = tree["stages"] if isinstance(tree["stages"], list) else ()
            return [(item, join_path("stages", index)) for index, item in enumerate(stages)]
        if "strategy" in tree and "steps" not in tree:
            message = "a top-level 'strategy' applies only to a pipeline with top-level 'steps'; put it on a job"
            self.r.at(tree, "strategy", "strategy", message)
        if "jobs" in tree:
            stage = self.implicit(("jobs",), stage=IMPLICIT_STAGE)
        else:
            job = self.implicit(("steps", *_JOB_KEYS_AT_ROOT), job=IMPLICIT_JOB)
            stage = YMap((("stage", IMPLICIT_STAGE), ("jobs", [job])), tree.mark)
        return [(stage, "")]

    def implicit(self, keys: tuple[str, ...], **name: str) -> YMap:
        node = YMap(name.items(), self.tree.mark)
        for key in keys:
            if key in self.tree:
                node[key] = self.tree[key]
                node.key_marks[key] = mark_of(self.tree, key)  # type: ignore[assignment]
        return node

    def stage_identity(self, item: Any, index: int) -> tuple[str, tuple[str, ...]]:
        """A stage's name and dependencies (by default the stage before it); call in stage order."""
        name = text(item.get("stage")) or f"Stage{index + 1}"
        if "dependsOn" in item:
            depends = _names(item["dependsOn"])
        else:
            depends = (self.previous,) if index and self.previous else ()
        self.previous = name
        return name, depends

    def check_graphs(self) -> None:
        """Only the dependency graphs of stages and of each stage's jobs (the tree has other problems)."""
        stages = []
        for index, (item, path) in enumerate(self.stage_items()):
            if not isinstance(item, dict):
                continue
            name, depends = self.stage_identity(item, index)
            stages.append(Node(name, depends, mark_of(item, "stage"), mark_of(item, "dependsOn"), path or "stage"))
            jobs: list[Any] = item["jobs"] if isinstance(item.get("jobs"), list) else []
            nodes = [
                Node(self.job_name(job, i), _names(job.get("dependsOn")), mark_of(job, _job_kind(job)),
                     mark_of(job, "dependsOn"), join_path(path, f"jobs[{i}]").lstrip("."))
                for i, job in enumerate(jobs) if isinstance(job, dict)
            ]  # fmt: skip
            check_graph(nodes, "job", self.r, f" in stage '{name}'" if name != IMPLICIT_STAGE else "")
        check_graph(stages, "stage", self.r)

    @staticmethod
    def job_name(item: Any, index: int) -> str:
        return text(item.get(_job_kind(item))) or (IMPLICIT_JOB if index == 0 else f"{IMPLICIT_JOB}{index + 1}")

    def stage(self, item: Any, path: str, index: int) -> tuple[Stage, tuple[Any, Any, str]]:
        name, depends = self.stage_identity(item, index)
        pool = parse_pool(item.get("pool")) or self.pool
        jobs = [
            built
            for i, job in enumerate(item.get("jobs") or ())
            for built in self.job(job, join_path(path, f"jobs[{i}]").lstrip("."), i, pool)
        ]
        jobs = list(zip(expand_depends_on([job for job, _ in jobs]), (where for _, where in jobs), strict=True))
        where = f" in stage '{name}'" if name != IMPLICIT_STAGE else ""
        nodes = [Node(j.name, j.depends_on, mark, depends_mark, p) for j, (mark, depends_mark, p) in jobs]
        check_graph(nodes, "job", self.r, where)
        if not jobs:
            self.r.add(mark_of(item, "stage"), path or "stages", f"stage '{name}' has no jobs")
        stage = Stage(
            name=name,
            display_name=text(item["displayName"]) if item.get("displayName") is not None else name,
            depends_on=depends,
            condition=check_condition(item.get("condition"), item, path, self.r),
            variables=parse_variables(item.get("variables")),
            jobs=tuple(job for job, _ in jobs),
        )
        return stage, (mark_of(item, "stage"), mark_of(item, "dependsOn"), path or "stage")

    previous: str | None = None

    def job(self, item: Any, path: str, index: int, pool: Pool | None) -> list[tuple[Job, tuple[Any, Any, str]]]:
        """The job of ``item``, or its legs when a job strategy copies it."""
        kind = _job_kind(item)
        name = self.job_name(item, index)
        steps_value, hook_pool, environment, strategy = item.get("steps"), None, None, None
        if kind == "deployment":
            steps_value, hook_pool = self.deploy_hook(item, path, name)
            environment = self.environment(item, path, name)
            strategy = "runOnce"
        if not steps_value and (kind == "job" or steps_value is not None):
            self.r.add(mark_of(item, kind), path, f"{kind} '{name}' has no steps")
        workspace = item.get("workspace") or {}
        for inline in check_checkouts(steps_value, join_path(path, "steps"), self.resources, self.r):
            self.inline.setdefault(inline.alias, inline)
        check_downloads(steps_value, join_path(path, "steps"), self.resources, self.r)
        job = Job(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            display_name=text(item["displayName"]) if item.get("displayName") is not None else name,
            depends_on=_names(item.get("dependsOn")),
            condition=check_condition(item.get("condition"), item, path, self.r),
            timeout_in_minutes=number(item.get("timeoutInMinutes"), 60),
            cancel_timeout_in_minutes=number(item.get("cancelTimeoutInMinutes"), 5),
            continue_on_error=flag(item.get("continueOnError")),
            pool=parse_pool(hook_pool) or parse_pool(item.get("pool")) or pool,
            workspace_clean=text(workspace["clean"]) if workspace.get("clean") else None,
            environment=environment,
            strategy=strategy,
            variables=parse_variables(item.get("variables")),
            steps=build_steps(steps_value, join_path(path, "steps"), name, self.r, self.steps_built),
            container=container_image(item, path, self.resources, self.r),
        )
        where = (mark_of(item, kind), mark_of(item, "dependsOn"), path)
        return [(leg, where) for leg in legs(job, item, path, self.r)]

    def deploy_hook(self, item: Any, path: str, name: str) -> tuple[Any, Any]:
        deploy = ((item.get("strategy") or {}).get("runOnce") or {}).get("deploy")
        if not isinstance(deploy, dict):
            message = f"deployment '{name}' needs 'strategy: runOnce: deploy: steps' (the only strategy supported)"
            self.r.add(mark_of(item, "strategy") or mark_of(item, "deployment"), join_path(path, "strategy"), message)
            return None, None
        return deploy.get("steps") or [], deploy.get("pool")

    def environment(self, item: Any, path: str, name: str) -> Environment | None:
        value = item.get("environment")
        if isinstance(value, dict) and value.get("name"):
            resource = value.get("resourceName")
            resource_type = value.get("resourceType")
            return Environment(
                text(value["name"]),
                text(resource) if resource else None,
                text(resource_type) if resource_type else None,
            )
        if value is not None and not isinstance(value, dict) and text(value):
            environment_name, _, resource = text(value).partition(".")
            return Environment(environment_name, resource or None)
        self.r.add(
            mark_of(item, "deployment"), join_path(path, "environment"), f"deployment '{name}' needs an 'environment'"
        )
        return None
