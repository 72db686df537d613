"""The legacy (pre-2019) ``phases:`` syntax, rewritten into the current one when a file is read.

Azure still accepts it, and Microsoft's schema (service-schema.json: ``phases``, ``phase``,
``phaseQueueTarget``, ``phaseServerTarget``) still describes it, marked "deprecated, use `jobs`
instead" and "use pool instead". The rewrite, as the schema's deprecation messages and the legacy
documentation ("YAML getting started - Phase options") describe it:

- ``phases:`` (the root of a pipeline or of a template) is ``jobs:``; ``- phase: Name`` in it is
  ``- job: Name``; ``- template: x.yml`` in it includes the ``jobs:`` (or ``phases:``) of ``x.yml``;
- ``queue: name`` is ``pool: name``; ``queue:`` as a mapping splits into ``pool:`` (``name``,
  ``demands``), the job's own ``timeoutInMinutes``, ``cancelTimeoutInMinutes``, ``container`` and
  ``workspace``, and ``strategy:`` (``matrix``, with ``parallel`` as its ``maxParallel``; ``parallel``
  alone is the slicing ``strategy.parallel``);
- ``server: true`` is ``pool: server`` (an agentless job); ``server:`` as a mapping is that, with
  ``timeoutInMinutes``, ``cancelTimeoutInMinutes`` and the strategy as for ``queue``.

The rewritten tree keeps the positions of what it moves (a problem found later names the line of the
legacy key), so nothing after the reading knows the legacy form existed. The legacy resources list
(``resources: - repo: self``) is read by :mod:`mlyard.pipelines.resources`.
"""

from __future__ import annotations

from typing import Any

from mlyard.pipelines.schema import describe, is_directive, is_expression, join_path
from mlyard.pipelines.source import Mark, Reporter, YList, YMap, mark_of

# legacy key -> what it is now (docs/pipelines.md's support table lists these: tests check it)
LEGACY_KEYS = {"phases": "jobs", "phase": "job", "queue": "pool", "server": "pool: server"}
QUEUE_KEYS = ("name", "demands", "timeoutInMinutes", "cancelTimeoutInMinutes", "parallel", "matrix", "container",
              "workspace")  # fmt: skip
SERVER_KEYS = ("timeoutInMinutes", "cancelTimeoutInMinutes", "parallel", "matrix")
_JOB_KEYS = ("timeoutInMinutes", "cancelTimeoutInMinutes", "container", "workspace")  # keys of the job itself
MAX_DEPTH = 50  # nested ${{ }} directives walked; a file is bounded in size, this bounds the recursion
Entry = tuple[str, Any, "Mark | None"]


def modernise(tree: Any, reporter: Reporter) -> Any:
    """``tree`` (a loaded pipeline or template file) in the current syntax; problems go to ``reporter``.

    A tree without legacy keys is returned as it is (the same object)."""
    if not isinstance(tree, YMap) or not _has_legacy(tree, 0):
        return tree
    return _Rewriter(reporter).owner(tree, "", root=True, depth=0)


def _has_legacy(node: YMap, depth: int) -> bool:
    """Whether the root of a file (or a directive body in it) has a legacy key."""
    for key, value in node.items():
        if key in ("phases", "queue", "server"):
            return True
        if depth < MAX_DEPTH and is_directive(key) and isinstance(value, YMap) and _has_legacy(value, depth + 1):
            return True
    return False


class _Rewriter:
    def __init__(self, reporter: Reporter) -> None:
        self.r = reporter

    def owner(self, node: YMap, path: str, *, root: bool, depth: int) -> YMap:
        """A pipeline root (``root``) or a phase: its legacy keys rewritten, in place of the key."""
        result = YMap((), node.mark)
        targets = [key for key in ("queue", "server") if key in node]
        if len(targets) > 1:
            message = "a phase has one target: 'queue' or 'server', not both"
            self.r.at(node, "server", join_path(path, "server"), message)
        for key, value in node.items():
            key_mark = mark_of(node, key)
            key_path = join_path(path, key)
            entries: list[Entry]
            if key == "phases" and root:
                entries = [("jobs", self.phases(value, key_path, depth), key_mark)]
            elif key == "phase" and not root:
                entries = [("job", value, key_mark)]
            elif key == "queue" and targets == ["queue"]:
                entries = self.queue(node, value, key_path)
            elif key == "server" and targets == ["server"]:
                entries = self.server(node, value, key_path)
            elif is_directive(key) and isinstance(value, YMap) and depth < MAX_DEPTH:
                entries = [(key, self.owner(value, key_path, root=root, depth=depth + 1), key_mark)]
            else:
                entries = [(key, value, key_mark)]
            for name, new_value, mark in entries:
                self.put(result, node, key, name, new_value, mark, key_path)
        return result

    def put(self, result: YMap, node: YMap, legacy: str, name: str, value: Any, mark: Mark | None, path: str) -> None:
        """Add ``name: value`` (from the key ``legacy`` of ``node``), unless the node gives it itself too."""
        if name != legacy and name in node:
            message = f"'{legacy}' is the legacy form of '{name}', which is given too: keep only '{name}'"
            if name != LEGACY_KEYS.get(legacy):
                message = f"'{legacy}' gives '{name}', which is given too: keep only one of them"
            self.r.add(mark_of(node, legacy), path, message)
            return
        result[name] = value
        result.key_marks[name] = mark or result.mark  # type: ignore[assignment]

    def phases(self, value: Any, path: str, depth: int) -> Any:
        """The items of a ``phases:`` list as jobs (``${{ }}`` directive bodies included)."""
        if not isinstance(value, YList):
            return value  # the validator says what is wrong with it, as for `jobs:`
        result = YList((), value.mark)
        for index, item in enumerate(value):
            item_path = join_path(path, index)
            if isinstance(item, YMap) and len(item) == 1 and is_directive(key := next(iter(item))):
                body = item[key]
                if depth < MAX_DEPTH and isinstance(body, YList):
                    body = self.phases(body, join_path(item_path, key), depth + 1)
                elif depth < MAX_DEPTH and isinstance(body, YMap):
                    body = self.owner(body, join_path(item_path, key), root=False, depth=depth + 1)
                item = _single(key, body, item)
            elif isinstance(item, YMap) and "template" not in item:
                item = self.owner(item, item_path, root=False, depth=depth)
            result.append(item)
            result.item_marks.append(mark_of(value, index))
        return result

    def queue(self, node: YMap, value: Any, path: str) -> list[Entry]:
        mark = mark_of(node, "queue")
        if value is None:
            return []
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return [("pool", value, mark)]  # a queue name (or an expression giving one) is a pool name
        if not isinstance(value, YMap):
            self.r.at(node, "queue", path, f"expected a queue name or a mapping, got {describe(value)}")
            return []
        if not self.known_keys(value, QUEUE_KEYS, "queue", path):
            return []
        entries: list[Entry] = []
        pool = YMap(((k, v) for k, v in value.items() if k in ("name", "demands")), value.mark)
        pool.key_marks = {k: m for k, m in value.key_marks.items() if k in pool}
        if pool:
            entries.append(("pool", pool, mark))
        return entries + self.job_keys(value, path)

    def server(self, node: YMap, value: Any, path: str) -> list[Entry]:
        mark = mark_of(node, "server")
        if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "false"):
            return []  # not agentless: the default pool
        if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
            return [("pool", "server", mark)]
        if not isinstance(value, YMap):
            shown = "an expression" if is_expression(value) else describe(value)
            self.r.at(node, "server", path, f"expected true, false or a mapping, got {shown}; or write 'pool: server'")
            return []
        if not self.known_keys(value, SERVER_KEYS, "server", path):
            return []
        return [("pool", "server", mark), *self.job_keys(value, path)]

    def known_keys(self, value: YMap, known: tuple[str, ...], legacy: str, path: str) -> bool:
        """Whether the mapping of a legacy target has only ``known`` keys (problems reported)."""
        ok = True
        for key in value:
            if is_directive(key) or is_expression(key):
                message = f"template expressions in the keys of a legacy '{legacy}' are not supported by mlyard; " \
                          f"write it as pool/strategy keys of the job"  # fmt: skip
            elif key not in known:
                message = f"unknown key '{key}' in the legacy '{legacy}'; supported keys: {', '.join(known)}"
            else:
                continue
            self.r.at(value, key, join_path(path, key), message)
            ok = False
        return ok

    @staticmethod
    def job_keys(value: YMap, path: str) -> list[Entry]:
        """The job's own keys and its strategy, from a legacy target mapping."""
        entries: list[Entry] = [(key, value[key], mark_of(value, key)) for key in _JOB_KEYS if key in value]
        if "matrix" in value or "parallel" in value:
            # "parallel: 2 # Consume up to two agents at a time" with a matrix; alone, the number of slices
            first = "matrix" if "matrix" in value else "parallel"
            spec = [("matrix", "matrix"), ("parallel", "maxParallel")] if first == "matrix" else [(first, first)]
            strategy = YMap(((new, value[old]) for old, new in spec if old in value), mark_of(value, first))
            strategy.key_marks = {new: mark_of(value, old) for old, new in spec if old in value}  # type: ignore[misc]
            entries.append(("strategy", strategy, mark_of(value, first)))
        return entries


def _single(key: str, body: Any, like: YMap) -> YMap:
    result = YMap(((key, body),), like.mark)
    result.key_marks = dict(like.key_marks)
    return result
