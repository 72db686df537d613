"""Template files: where a ``template:`` reference points, and each file loaded and checked once.

Paths are relative to the including file, or to the root of its repository when they start with ``/``
("Template usage reference"); a path leaving the repository is an error. ``file.yml@alias`` is a file
of the repository resource ``alias`` (``resources.repositories``), from that repository's root;
``@self`` is the pipeline's own repository. A template of another repository includes its own files
without ``@``, as in Azure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from mlyard.pipelines.errors import PipelineError
from mlyard.pipelines.legacy import modernise
from mlyard.pipelines.parameters import parse_declarations
from mlyard.pipelines.schema import validate_tree
from mlyard.pipelines.source import Mark, Reporter, SourceDocument, load_source
from mlyard.pipelines.syntax import check_syntax

# Mark, Reporter, SourceDocument, load_source

MAX_FILES = 100  # "Template usage reference": at most 100 separate YAML files may be included
Loaded = tuple[SourceDocument, tuple[Any, ...]]


class TemplateFiles:
    """Locates and loads template files below ``repo_root`` for one compilation (cached)."""

    def __init__(
        self,
        reporter: Reporter,
        repo_root: Path,
        declared: Collection[str] = (),
        folders: Mapping[str, str | Path] | None = None,
    ) -> None:
        """``declared``: the aliases of the repository resources; ``folders``: the root folder of each one
        whose files are available (read only when a template needs it: a mapping may export on demand)."""
        self.r = reporter
        self.repo_root = repo_root.resolve()
        self.declared = tuple(declared)
        self.folders = folders or {}
        self._roots: dict[str, Path] = {}
        self.cache: dict[Path, Loaded | None] = {}
        self._located: dict[tuple[str, str], Path] = {}
        self._root_of: dict[str, tuple[str, Path]] = {}  # a located file -> (alias, root of its repository)

    def locate(self, name: str, including: str, mark: Mark | None, path: str) -> Path | None:
        key = (including, name)
        if key not in self._located:
            found = self._locate(name, including, mark, path)
            if found is None:  # not cached: every bad reference gets its own diagnostic
                return None
            self._located[key] = found
        return self._located[key]

    def _locate(self, name: str, including: str, mark: Mark | None, path: str) -> Path | None:
        file_name, at, alias = name.rpartition("@") if "@" in name else (name, "", "")
        if at:
            root = self._repository_root(name, alias.strip(), mark, path)
            if root is None:
                return None
            alias = alias.strip() if alias.strip() != "self" else ""
            file = (root / file_name.strip().lstrip("/")).resolve()
        else:
            alias, root = self._root_of.get(including, ("", self.repo_root))
            base = root if name.startswith("/") else Path(including).parent
            file = (base / name.lstrip("/")).resolve()
        if not file.is_relative_to(root):
            self.r.add(mark, path, f"template '{name}' is outside the repository")
            return None
        self._root_of[str(file)] = (alias, root)
        return file

    def _repository_root(self, name: str, alias: str, mark: Mark | None, path: str) -> Path | None:
        if alias == "self":
            return self.repo_root
        if alias not in self.declared:
            declared = ", ".join(sorted(self.declared)) or "none"
            message = (
                f"template '{name}': no repository resource '{alias}'; declare it under "
                f"resources.repositories (declared: {declared}), or use '@self' for this repository"
            )
            self.r.add(mark, path, message)
            return None
        if alias in self._roots:
            return self._roots[alias]
        if alias not in self.folders:
            message = f"the files of repository '{alias}' are not available here; give them with --repo {alias}=PATH"
            self.r.add(mark, path, f"template '{name}': {message}")
            return None
        root = self._roots[alias] = Path(self.folders[alias]).resolve()
        return root

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
                source = SourceDocument(source.file, modernise(source.tree, reporter))  # legacy `phases:`
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
        alias, root = self._root_of.get(str(file), ("", self.repo_root))
        try:
            return str(file.relative_to(root)) + (f"@{alias}" if alias else "")
        except ValueError:
            return str(file)

    def describe_chain(self, chain: tuple[str, ...]) -> str:
        return " -> ".join(self.relative(Path(item)) for item in chain)
