"""`load_pipeline`: read a pipeline file (or text), check its structure, and build the :class:`Pipeline`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlyard.pipelines.compile import compile_pipeline
from mlyard.pipelines.errors import PipelineError
from mlyard.pipelines.legacy import modernise
from mlyard.pipelines.model import Pipeline
from mlyard.pipelines.parameters import parse_declarations
from mlyard.pipelines.resources import parse_resources
from mlyard.pipelines.schedules import parse_schedules
from mlyard.pipelines.schema import describe, validate_tree
from mlyard.pipelines.source import Reporter, SourceDocument, load_source, mark_at
from mlyard.pipelines.syntax import check_syntax
from mlyard.pipelines.triggers import Decision, Trigger, TriggerSyntaxError, parse_trigger
from mlyard.pipelines.triggers import trigger_decision as decide

PR_WARNING = "'pr' is ignored: mlyard does not run pull request validation (as with Azure Repos, use branch policies)"


def read_source(source: str | Path, *, name: str | None = None) -> SourceDocument:
    """The source document of a file (a :class:`Path`) or of YAML text (a ``str``).

    A string is always YAML text, never a file name: text that happens to name a file on this machine is
    parsed as YAML, so YAML received from a user (a pushed file, a request) cannot make the server read
    one of its own files. Callers that hold a path pass a :class:`Path`.
    """
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reporter = Reporter(str(source))
            reporter.add(None, "", f"cannot read the pipeline file: {exc}")
            raise PipelineError(reporter.diagnostics) from exc
        return load_source(text, str(source))
    return load_source(source, name or "<pipeline>")


def load_pipeline(source: str | Path, *, name: str | None = None, repo_root: str | Path | None = None) -> Pipeline:
    """Load and check a pipeline: every problem (with file:line:col) in one :class:`PipelineError`.

    ``source`` is a file (a :class:`Path`) or the YAML text itself (a ``str``; never read as a file name);
    ``name`` is the pipeline's name (default: the file's stem) and the file name used for YAML text.
    When the file as written has problems but can still be expanded (every parameter has a default), the
    expansion is checked too, so that one run reports the problems of both; its templates are read below
    ``repo_root`` (default for a file: as :func:`compile_pipeline`; YAML text reads none unless given).
    """
    document = read_source(source, name=name)
    reporter = Reporter(document.file)
    tree = document.tree
    if tree is None:
        reporter.add(None, "", "the pipeline is empty: it needs one of the keys stages, jobs, steps or extends")
        reporter.raise_if_any()
    tree = modernise(tree, reporter)  # the legacy `phases:` syntax, in the current one
    if tree is not document.tree:
        document = SourceDocument(document.file, tree)
    validate_tree(tree, reporter, raw=True)
    check_syntax(tree, reporter)
    if not isinstance(tree, dict):
        reporter.raise_if_any()
    before = len(reporter.diagnostics)
    parameters = parse_declarations(tree.get("parameters"), tree, "parameters", "parameters", reporter)
    declarations_ok = len(reporter.diagnostics) == before
    trigger = _trigger(tree, reporter)
    schedules = schedules_of(tree, reporter)
    resources = parse_resources(tree, reporter)
    warnings = ((PR_WARNING,) if "pr" in tree else ()) + resources.warnings
    pipeline_name = name or (Path(document.file).stem if document.file != "<pipeline>" else None)
    unsupported = tuple(sorted(reporter.unsupported))
    pipeline = Pipeline(
        pipeline_name, document.file, document, parameters, trigger, warnings, unsupported, schedules or (),
        resources,
    )
    expandable = declarations_ok and all(parameter.has_default for parameter in parameters)
    if reporter.diagnostics and expandable and (isinstance(source, Path) or repo_root is not None):
        _check_expansion(pipeline, reporter, repo_root)
    reporter.raise_if_any()
    return pipeline


def _check_expansion(pipeline: Pipeline, reporter: Reporter, repo_root: str | Path | None) -> None:
    """Add the problems of the expansion of a pipeline that has problems as written (not twice)."""
    try:
        compile_pipeline(pipeline, repo_root=repo_root)
    except PipelineError as exc:
        seen = {(d.file, d.line, d.column, d.message) for d in reporter.diagnostics}
        for diagnostic in exc.diagnostics:  # the same problem found by both passes is reported once
            if (diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.message) not in seen:
                reporter.diagnostics.append(diagnostic)


def _report(tree: dict[str, Any], reporter: Reporter, key: str, exc: TriggerSyntaxError) -> None:
    for problem in getattr(exc, "problems", (exc,)):
        key_path = tuple(problem.key_path)
        path = key + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key_path)
        reporter.add(mark_at(tree, (key, *key_path)), path, problem.message)


def load_trigger(source: str | Path, *, name: str | None = None) -> Trigger:
    """Only the CI trigger of a pipeline file: its ``trigger`` section is read and checked, nothing else, so
    that a file with problems elsewhere (an unsupported key, a template that is not there) still says
    whether a push runs it. YAML syntax errors and problems in ``trigger`` raise :class:`PipelineError`."""
    document = read_source(source, name=name)
    reporter = Reporter(document.file)
    tree = document.tree
    if tree is not None and not isinstance(tree, dict):
        reporter.add(None, "", f"a pipeline must be a mapping, got {describe(tree)}")
    trigger = _trigger(tree if isinstance(tree, dict) else {}, reporter)
    reporter.raise_if_any()
    return trigger  # type: ignore[no-any-return]


def _trigger(tree: dict[str, Any], reporter: Reporter) -> Any:
    try:
        return parse_trigger(tree.get("trigger"), present="trigger" in tree)
    except TriggerSyntaxError as exc:
        _report(tree, reporter, "trigger", exc)
        return None


def schedules_of(tree: Any, reporter: Reporter) -> tuple[Any, ...] | None:
    """The parsed ``schedules:`` of a pipeline tree (problems added to ``reporter``; None then)."""
    if not isinstance(tree, dict):
        return ()
    try:
        return parse_schedules(tree.get("schedules"), present="schedules" in tree)
    except TriggerSyntaxError as exc:
        _report(tree, reporter, "schedules", exc)
        return None


def trigger_decision(
    pipeline: Pipeline, ref: str, changed_paths: Sequence[str] | None = None, commit_message: str = ""
) -> Decision:
    """Whether a push of ``ref`` changing ``changed_paths`` runs ``pipeline`` (its ``trigger``), and why."""
    return decide(pipeline.trigger, ref, changed_paths, commit_message)
