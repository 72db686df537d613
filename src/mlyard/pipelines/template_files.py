"""Template files: where a ``template:`` reference points, and each file loaded and checked once.

Paths are relative to the including file, or to the repository root when they start with ``/``
("Template usage reference"); a path leaving the repository, or naming another repository
(``file.yml@repo``), is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlyard.pipelines.errors import PipelineError
from mlyard.pipelines.parameters import parse_declarations
from mlyard.pipelines.schema import validate_tree
from mlyard.pipelines.source import Mark, Reporter, SourceDocument, load_source
from mlyard.pipelines.syntax import check_syntax

# Mark, Reporter, SourceDocument, load_source

MAX_FILES = 100  # "Template usage reference": at most 100 separate YAML files may be included
Loaded = tuple[SourceDocument, tuple[Any, ...]]


class TemplateFiles:
    """Locates and loads template files below ``repo_root`` for one compilation (cached)."""

    def __init__(self, reporter: Reporter, repo_root: Path) -> None:
        self.r = reporter
        self.repo_root = repo_root.resolve()
        self.cache: dict[Path, Loaded | None] = {}
        self._located: dict[tuple[str, str], Path] = {}

    def locate(self, name: str, including: str, mark: Mark | None, path: str) -> Path | None:
        key = (including, name)
        if key not in self._located:
            found = self._locate(name, including, mark, path)
            if found is None:  # not cached: every bad reference gets its own diagnostic
                return None
            self._located[key] = found
        return self._located[key]

    def _locate(self, name: str, including: str, mark: Mark | None, path: str) -> Path | None:
        if "@" in name:
            self.r.add(mark, path, f"template '{name}': templates from other repositories (@repo) are not supported")
            return None
        base = self.repo_root if name.startswith("/") else Path(including).parent
        file = (base / name.lstrip("/")).resolve()
        if not file.is_relative_to(self.repo_root):
            self.r.add(mark, path, f"template '{name}' is outside the repository")
            return None
        return file

    def load(self, file: Path, mark: Mark | None, path: str) -> tuple[SourceDocument, tuple[Any, ...]] | None:
        if file in self.cache:
            return self.cache[file]
        result = None
        if len(self.cache) >= MAX_FILES:
            self.r.add(mark, path, f"more than {MAX_FILES} template files: '{self.relative(file)}' is one too many")
            return None
        if not file.is_file():
            self.r.add(mark, path, f"template file '{self.relative(file)}' not found")
        else:
            reporter = Reporter(str(file))
            try:
                source = load_source(file.read_text(encoding="utf-8"), self.relative(file))
            except (OSError, UnicodeDecodeError) as exc:
                self.r.add(mark, path, f"cannot read template '{self.relative(file)}': {exc}")
                source = None
            except PipelineError as exc:
                self.r.diagnostics.extend(exc.diagnostics)
                source = None
            if source is not None and not isinstance(source.tree, dict):
                reporter.add(None, "", "a template must be a mapping")
            elif source is not None:
                validate_tree(source.tree, reporter, raw=True, template=True)
                check_syntax(source.tree, reporter)
                tree = source.tree
                declared = parse_declarations(tree.get("parameters"), tree, "parameters", "parameters", reporter)
                result = (source, declared)
            self.r.diagnostics.extend(d for d in reporter.diagnostics if d not in self.r.diagnostics)
            if reporter.diagnostics:
                result = None
        self.cache[file] = result
        return result

    def relative(self, file: Path) -> str:
        try:
            return str(file.relative_to(self.repo_root))
        except ValueError:
            return str(file)

    def describe_chain(self, chain: tuple[str, ...]) -> str:
        return " -> ".join(self.relative(Path(item)) for item in chain)
