"""Check a template file on its own (`mlyard pipelines validate --template`): a step, job, stage or
variable template is a file with ``parameters:`` and one of ``steps``, ``jobs``, ``stages`` or
``variables`` ("Template usage reference"), not a pipeline.

The file is checked as written (keys, shapes, parameter declarations); when every parameter has a
default it is also expanded with those defaults, as a ``template:`` reference without parameters
would expand it, and what the expansion produces is checked. Names the template refers to outside
itself (a ``dependsOn`` on the caller's stages or jobs) are not checked: only a pipeline knows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlyard.pipelines.compile import default_repo_root
from mlyard.pipelines.legacy import modernise
from mlyard.pipelines.limits import Budget
from mlyard.pipelines.parameters import parse_declarations
from mlyard.pipelines.parser import read_source
from mlyard.pipelines.schema import describe, is_directive, validate_tree
from mlyard.pipelines.source import Reporter, YMap
from mlyard.pipelines.templates import Expander, Scope

BODIES = ("stages", "jobs", "steps", "variables")
TEMPLATE_KEYS = frozenset({"parameters", *BODIES, "phases"})  # phases: the legacy jobs (pipelines/legacy.py)


@dataclass(frozen=True)
class TemplateCheck:
    """A template file that passed: its kind (``steps``, ``jobs``, ``stages`` or ``variables``) and warnings."""

    kind: str
    warnings: tuple[str, ...] = ()


def looks_like_template(tree: Any) -> bool:
    """A file with ``parameters:`` and only template sections, or with only ``variables:`` (auto-detection).

    Such a file is rarely a whole pipeline (a pipeline with only runtime parameters and a body); checking
    it as a template checks the same things, but does not ask for a body or for dependencies it does not hold.
    """
    if not isinstance(tree, dict) or not tree:
        return False
    keys = {key for key in tree if not is_directive(key)}
    return keys <= TEMPLATE_KEYS and ("parameters" in keys or keys == {"variables"})


def check_template(file: Path, *, repo_root: Path | None = None) -> TemplateCheck:
    """Check one template file; raises :class:`~mlyard.pipelines.errors.PipelineError` with every problem.

    Templates it references are read below ``repo_root`` (default: the git work tree holding the file)."""
    document = read_source(file)
    reporter = Reporter(document.file)
    tree = modernise(document.tree, reporter)  # the legacy `phases:` syntax, in the current one
    if not isinstance(tree, dict):
        reporter.add(None, "", f"a template must be a mapping with parameters and steps, jobs, stages or variables, "
                               f"got {describe(tree)}")  # fmt: skip
        reporter.raise_if_any()
    for key in tree:
        if not is_directive(key) and key not in TEMPLATE_KEYS:
            message = f"'{key}' is not a template key: a template has parameters and steps, jobs, stages or variables"
            reporter.at(tree, key, str(key), message)
    bodies = [key for key in BODIES if key in tree]
    if not bodies:
        reporter.add(tree.mark, "", "a template needs one of the keys steps, jobs, stages or variables")  # type: ignore[attr-defined]
    validate_tree(tree, reporter, raw=True, template=True)
    declared = parse_declarations(tree.get("parameters"), tree, "parameters", "parameters", reporter)
    reporter.raise_if_any()
    kind = bodies[0]
    required = [parameter.name for parameter in declared if not parameter.has_default]
    if required:
        note = f"template not expanded: parameters without a default ({', '.join(required)})"
        return TemplateCheck(kind, (note,))
    path = file.resolve()
    root = repo_root if repo_root is not None else default_repo_root(path)
    expander = Expander(reporter, root, Budget(document.file))
    caller = str(path.parent / "<template check>")  # a stand-in for a pipeline that references the file
    reference = YMap((("template", path.name),), None)
    expanded, _ = expander.instantiate(reference, Scope(caller, chain=(caller,)), "", None)
    reporter.raise_if_any()
    if expanded is not None:
        validate_tree(expanded, reporter, raw=False, template=True)
    reporter.raise_if_any()
    return TemplateCheck(kind)
