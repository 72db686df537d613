"""Load YAML keeping positions: plain Python values whose containers remember where they came from.

Mappings load as :class:`YMap` (a ``dict``) and sequences as :class:`YList` (a ``list``); both carry the
:class:`Mark` (file, 1-based line and column) of the node and of each key or item, so any later stage
(validation, template expansion, the dependency graph) can name ``file:line:col`` of the value it
rejects, even after template expansion moved it into another tree.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlyard.pipelines.errors import Diagnostic, PipelineError
from mlyard.pipelines.limits import check_size

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCTOR = yaml.SafeLoader("")  # only used for its scalar constructors (int, float)
_BOOL = re.compile(r"^(?:true|false)$", re.IGNORECASE)
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a node starts: file name and 1-based line and column."""

    file: str
    line: int
    column: int


class YMap(dict):
    """A mapping loaded from YAML: ``mark`` of the mapping, ``key_marks[key]`` of each key."""

    __slots__ = ("key_marks", "mark")

    def __init__(self, items: Iterable[tuple[str, Any]] = (), mark: Mark | None = None) -> None:
        super().__init__(items)
        self.mark = mark
        self.key_marks: dict[str, Mark] = {}


class YList(list):
    """A sequence loaded from YAML: ``mark`` of the sequence, ``item_marks[i]`` of each item."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, items: Iterable[Any] = (), mark: Mark | None = None) -> None:
        super().__init__(items)
        self.mark = mark
        self.item_marks: list[Mark | None] = []


def mark_of(container: Any, key: Any = None) -> Mark | None:
    """The mark of ``container[key]`` (its key for a mapping, the item for a sequence), else of the container."""
    if isinstance(container, YMap):
        return container.key_marks.get(key, container.mark) if key is not None else container.mark
    if isinstance(container, YList):
        if isinstance(key, int) and 0 <= key < len(container.item_marks):
            return container.item_marks[key] or container.mark
        return container.mark
    return None


@dataclass
class Reporter:
    """Collects diagnostics so that every problem is reported at once; ``unsupported`` collects the
    notices of valid Azure Pipelines that this mlyard cannot run (they do not make a pipeline invalid)."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unsupported: list[Diagnostic] = field(default_factory=list)

    def add(self, mark: Mark | None, path: str, message: str) -> None:
        file, line, column = (mark.file, mark.line, mark.column) if mark else (self.file, 1, 1)
        diagnostic = Diagnostic(file, line, column, path, message)
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)

    def at(self, container: Any, key: Any, path: str, message: str) -> None:
        self.add(mark_of(container, key), path, message)

    def note_unsupported(self, container: Any, key: Any, path: str, message: str) -> None:
        """A notice: valid Azure Pipelines at ``container[key]`` that mlyard cannot run."""
        mark = mark_of(container, key)
        file, line, column = (mark.file, mark.line, mark.column) if mark else (self.file, 1, 1)
        notice = Diagnostic(file, line, column, path, message)
        if notice not in self.unsupported:
            self.unsupported.append(notice)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise PipelineError(list(self.diagnostics))


@dataclass(frozen=True)
class SourceDocument:
    """A loaded YAML file: its plain-value tree (``YMap``/``YList`` containers) and its file name."""

    file: str
    tree: Any

    def position(self, path: tuple[str | int, ...]) -> tuple[int, int]:
        """1-based (line, column) of the value at ``path`` (keys and indexes), or of its nearest parent."""
        mark = mark_at(self.tree, path)
        return (mark.line, mark.column) if mark else (1, 1)


def mark_at(tree: Any, path: tuple[Any, ...]) -> Mark | None:
    """The mark of the key or item at ``path`` below ``tree``, or of the nearest parent that exists."""
    node, mark = tree, mark_of(tree)
    for key in path:
        found = isinstance(node, dict) and key in node
        found = found or (isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node))
        if not found:
            break
        mark = mark_of(node, key) or mark
        node = node[key]
    return mark


# Parsed documents, by content (file name and text): the same YAML is parsed once (a pipeline file is read
# when a push is triggered, when a run is queued and when the CLI checks it again; a template by every
# pipeline that uses it). Bounded by entries and by the YAML text they hold. Trees are never changed after
# loading (expansion builds new ones), so a cached document is shared.
CACHE_ENTRIES = 64
CACHE_TEXT = 8 * 1024 * 1024
_cache: OrderedDict[tuple[str, str], SourceDocument] = OrderedDict()
_cache_text = 0
_cache_lock = threading.Lock()


def load_source(text: str, file: str) -> SourceDocument:
    """Parse one YAML document keeping positions; syntax errors, duplicate keys and aliases are diagnostics.

    A document parsed before from the same text under the same file name comes from a bounded cache."""
    global _cache_text
    key = (file, text)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    document = _parse(text, file)
    if len(text) <= CACHE_TEXT // 4:
        with _cache_lock:
            if key not in _cache:
                _cache[key] = document
                _cache_text += len(text)
            while len(_cache) > CACHE_ENTRIES or _cache_text > CACHE_TEXT:
                (_, old_text), _ = _cache.popitem(last=False)
                _cache_text -= len(old_text)
    return document


def _parse(text: str, file: str) -> SourceDocument:
    check_size(text, file)
    reporter = Reporter(file)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(file, mark.line + 1, mark.column + 1) if mark else None
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        reporter.add(where, "", f"invalid YAML: {problem or exc}")
        reporter.raise_if_any()
    except yaml.YAMLError as exc:  # pragma: no cover - reader errors without marks
        reporter.add(None, "", f"invalid YAML: {exc}")
        reporter.raise_if_any()
    if node is None:
        return SourceDocument(file, None)
    converter = _Converter(file, reporter)
    tree = converter.convert(node)
    if converter.aliases:
        _report_aliases(text, file, reporter)
    reporter.raise_if_any()
    return SourceDocument(file, tree)


class _Converter:
    def __init__(self, file: str, reporter: Reporter) -> None:
        self.file = file
        self.reporter = reporter
        self.seen: set[int] = set()
        self.aliases = False

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: yaml.Node) -> Any:
        if id(node) in self.seen:
            self.aliases = True
            return None
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node)
        if isinstance(node, yaml.SequenceNode):
            result = YList((self.convert(item) for item in node.value), self.mark(node))
            result.item_marks = [self.mark(item) for item in node.value]
            return result
        return scalar_value(node)

    def mapping(self, node: yaml.MappingNode) -> YMap:
        result = YMap((), self.mark(node))
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.reporter.add(self.mark(key_node), "", "YAML merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.reporter.add(self.mark(key_node), "", "a mapping key must be a plain value")
                continue
            key = key_node.value
            if key in result:
                first = result.key_marks[key]
                message = f"duplicate key '{key}' (first defined on line {first.line})"
                self.reporter.add(self.mark(key_node), "", message)
                continue
            result[key] = self.convert(value_node)
            result.key_marks[key] = self.mark(key_node)
        return result


class _AliasFinder(yaml.SafeLoader):
    """A pure-Python composer that knows where each alias is (the C composer resolves them silently)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_marks.append(self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _report_aliases(text: str, file: str, reporter: Reporter) -> None:
    finder = _AliasFinder(text)
    finder.alias_marks = []
    try:
        finder.get_single_node()
    finally:
        finder.dispose()
    for mark in finder.alias_marks:
        reporter.add(Mark(file, mark.line + 1, mark.column + 1), "", "YAML aliases (*name) are not supported")


def scalar_value(node: yaml.ScalarNode) -> Any:
    """A scalar the way Azure reads it: only ``true``/``false`` are booleans, numbers and null as YAML 1.2."""
    tag, text = node.tag, node.value
    if node.style or tag == _STR_TAG:  # libyaml gives "" for plain scalars, PyYAML None
        return text
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true" if _BOOL.match(text) else text
    if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        if ":" in text:  # YAML 1.1 sexagesimal numbers are strings in Azure
            return text
        try:
            if tag.endswith("int"):
                return _CONSTRUCTOR.construct_yaml_int(node)
            return _CONSTRUCTOR.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            return text
    return text
