"""`load_pipeline`: read a pipeline file (or text), check its structure, and build the :class:`Pipeline`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlyard.pipelines.errors import PipelineError
from mlyard.pipelines.model import Pipeline
from mlyard.pipelines.parameters import parse_declarations
from mlyard.pipelines.resources import parse_resources
from mlyard.pipelines.schema import validate_tree
from mlyard.pipelines.source import Reporter, SourceDocument, load_source, mark_at
from mlyard.pipelines.triggers import Decision, TriggerSyntaxError, parse_trigger
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


def load_pipeline(source: str | Path, *, name: str | None = None) -> Pipeline:
    """Load and check a pipeline: every problem (with file:line:col) in one :class:`PipelineError`.

    ``source`` is a file (a :class:`Path`) or the YAML text itself (a ``str``; never read as a file name);
    ``name`` is the pipeline's name (default: the file's stem) and the file name used for YAML text.
    """
    document = read_source(source, name=name)
    reporter = Reporter(document.file)
    tree = document.tree
    if tree is None:
        reporter.add(None, "", "the pipeline is empty: it needs one of the keys stages, jobs, steps or extends")
        reporter.raise_if_any()
    validate_tree(tree, reporter, raw=True)
    if not isinstance(tree, dict):
        reporter.raise_if_any()
    parameters = parse_declarations(tree.get("parameters"), tree, "parameters", "parameters", reporter)
    trigger = _trigger(tree, reporter)
    resources = parse_resources(tree, reporter)
    reporter.raise_if_any()
    warnings = ((PR_WARNING,) if "pr" in tree else ()) + resources.warnings
    pipeline_name = name or (Path(document.file).stem if document.file != "<pipeline>" else None)
    return Pipeline(pipeline_name, document.file, document, parameters, trigger, warnings, resources)


def _trigger(tree: dict[str, Any], reporter: Reporter) -> Any:
    try:
        return parse_trigger(tree.get("trigger"), present="trigger" in tree)
    except TriggerSyntaxError as exc:
        for problem in getattr(exc, "problems", (exc,)):
            key_path = tuple(problem.key_path)
            path = "trigger" + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in key_path)
            reporter.add(mark_at(tree, ("trigger", *key_path)), path, problem.message)
        return None


def trigger_decision(
    pipeline: Pipeline, ref: str, changed_paths: Sequence[str] | None = None, commit_message: str = ""
) -> Decision:
    """Whether a push of ``ref`` changing ``changed_paths`` runs ``pipeline`` (its ``trigger``), and why."""
    return decide(pipeline.trigger, ref, changed_paths, commit_message)
