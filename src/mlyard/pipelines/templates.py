"""Template expansion: compile-time ``${{ }}`` expressions, conditional insertion, ``each``, and
``template:`` references (steps, jobs, stages, variables) and ``extends:``.

Follows "Template expressions" and "Template usage reference": expressions are evaluated in the file
where they are written, with that file's parameters; a template's parameters are type-checked against
its ``parameters:`` declarations; paths are relative to the including file (``/`` = repository root).
The expanded tree keeps the positions (:class:`~mlyard.pipelines.source.Mark`) of what it copies.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions import ExpressionContext, evaluate
from mlyard.pipelines.limits import CLOCK_EVERY, Budget
from mlyard.pipelines.parameters import bind, is_untyped, text
from mlyard.pipelines.schema import describe, is_directive, join_path
from mlyard.pipelines.scope import Scope, fast_interpolate, scope_with_names, truthy, with_names
from mlyard.pipelines.source import Mark, Reporter, YList, YMap, mark_of
from mlyard.pipelines.template_files import TemplateFiles

MAX_DEPTH = 50
LIST_KINDS = frozenset({"steps", "jobs", "stages", "variables"})
_LIST_PARAMETERS = {"stepList": "steps", "jobList": "jobs", "deploymentList": "jobs", "stageList": "stages"}
_IF = re.compile(r"^\$\{\{\s*(if|elseif)\s+(.*?)\s*\}\}$", re.DOTALL | re.IGNORECASE)
_ELSE = re.compile(r"^\$\{\{\s*else\s*\}\}$", re.IGNORECASE)
_EACH = re.compile(r"^\$\{\{\s*each\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(.*?)\s*\}\}$", re.DOTALL | re.IGNORECASE)
_INSERT = re.compile(r"^\$\{\{\s*insert\s*\}\}$", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.DOTALL)


class Expander:
    """Expands one pipeline; template files are loaded (and checked) once per expander."""

    def __init__(
        self,
        reporter: Reporter,
        repo_root: Path,
        budget: Budget | None = None,
        repositories: Collection[str] = (),
        folders: Mapping[str, str | Path] | None = None,
    ) -> None:
        """``repositories``: the aliases of the repository resources, ``folders`` their files (see
        :class:`TemplateFiles`)."""
        self.r = reporter
        self.budget = budget or Budget(reporter.file)
        self._max_nodes = self.budget.limits.nodes
        self.files = TemplateFiles(reporter, repo_root, repositories, folders)
        self._contexts: dict[int, tuple[Scope, ExpressionContext]] = {}
        self._values: dict[int, tuple[ExpressionContext, dict[str, Any]]] = {}
        # Expanded templates by what they can see (file, parameters' values, variables, chain): a template
        # included again with the same values is the same tree (docs/pipelines.md, "Limits").
        self._expanded: dict[tuple[Any, ...], _Expanded] = {}
        self._variable_keys: dict[int, tuple[Mapping[str, Any], tuple[Any, ...]]] = {}
        self.inserted = 0  # structures an expression put into the tree (a parameter's steps, say): see instantiate

    # expressions ------------------------------------------------------------------------------------
    def context(self, scope: Scope) -> ExpressionContext:
        cached = self._contexts.get(id(scope))
        if cached is None or cached[0] is not scope:
            cached = (scope, scope.context())
            self._contexts[id(scope)] = cached
        return cached[1]

    def evaluate(self, expression: str, scope: Scope, mark: Mark | None, path: str) -> Any:
        try:
            return evaluate(expression, self.context(scope))
        except ExpressionError as exc:
            self.r.add(mark, path, f"invalid expression '{expression.strip()}': {exc.message}")
        except RecursionError:
            self.r.add(mark, path, f"expression '{expression.strip()[:80]}' is nested too deeply")
        return None

    def interpolate(self, value: str, scope: Scope, mark: Mark | None, path: str) -> Any:
        context = self.context(scope)
        entry = self._values.get(id(context))
        if entry is None or entry[0] is not context:  # the entry keeps its context alive: ids stay unique
            entry = self._values[id(context)] = (context, {})
        memo = entry[1]

        def one(expression: str) -> Any:
            if expression in memo:
                return memo[expression]
            result = evaluate(expression, context)
            if not isinstance(result, dict | list):  # structures are copied by the caller: never shared
                memo[expression] = result
            return result

        try:
            result = fast_interpolate(value, context, one)
            self.budget.built(result, mark, path)
            return result
        except ExpressionError as exc:
            self.r.add(mark, path, f"invalid expression in '{value.strip()}': {exc.message}")
        except RecursionError:
            self.r.add(mark, path, f"expression in '{value.strip()[:80]}' is nested too deeply")
        return None

    # the walk ---------------------------------------------------------------------------------------
    def expand(self, value: Any, scope: Scope, path: str, mark: Mark | None, kind: str | None = None) -> Any:
        budget = self.budget
        if budget.nodes < self._max_nodes and (budget.nodes + 1) % CLOCK_EVERY:
            budget.nodes += 1  # the common case of Budget.spend, without the call
        else:
            budget.spend(mark, path)
        cls = value.__class__
        if cls is str and "${{" not in value:  # most values: plain text, returned as is
            return value
        if cls is YMap:
            return self.expand_mapping(value, scope, path)
        if cls is YList:
            return self.expand_sequence(value, scope, path, kind)
        if isinstance(value, dict):
            return self.expand_mapping(_positioned(value, mark), scope, path)
        if isinstance(value, list):
            return self.expand_sequence(_positioned(value, mark), scope, path, kind)
        if isinstance(value, str) and "${{" in value:
            result = self.interpolate(value, scope, mark, path)
            if isinstance(result, dict | list):  # structure from a parameter: include its templates too
                self.inserted += 1
                return self.expand(_positioned(result, mark), scope, path, mark, kind)
            return result
        return value

    def expand_mapping(self, node: Any, scope: Scope, path: str) -> YMap:
        result = YMap((), getattr(node, "mark", None))
        variables = None
        if "variables" in node:
            scope, variables = self.variables_first(node, scope, path)
        matched: bool | None = None
        marks = node.key_marks if isinstance(node, YMap) else None
        for key, value in node.items():
            key_mark = marks.get(key, node.mark) if marks is not None else mark_of(node, key)
            if key.__class__ is str and "${{" not in key:  # a plain key (most): no directive, no expression
                new_value = variables if key == "variables" and variables is not None else self.expand(
                    value, scope, f"{path}.{key}" if path else key, key_mark, key if key in LIST_KINDS else None
                )
                matched = None
                result[key] = new_value
                result.key_marks[key] = key_mark or result.mark  # type: ignore[assignment]
                continue
            if is_directive(key):
                matched, body = self.directive(key, value, scope, join_path(path, key), key_mark, matched)
                for item in body:
                    self.merge(result, item, key_mark, join_path(path, key))
                continue
            matched = None
            new_key = key
            if isinstance(key, str) and "${{" in key:
                reported = len(self.r.diagnostics)
                new_key = text(self.interpolate(key, scope, key_mark, join_path(path, key)))
                if len(self.r.diagnostics) > reported:  # the key is unknown: its entry is left out
                    continue
            if key == "variables" and variables is not None:
                new_value = variables
            else:
                new_value = self.expand(
                    value, scope, join_path(path, new_key), key_mark, key if key in LIST_KINDS else None
                )
            result[new_key] = new_value
            result.key_marks[new_key] = key_mark or result.mark  # type: ignore[assignment]
        return result

    def merge(self, result: YMap, body: Any, mark: Mark | None, path: str) -> None:
        if body is None:
            return
        if not isinstance(body, dict):
            self.r.add(
                mark, path, f"the body of a template directive in a mapping must be a mapping, got {describe(body)}"
            )
            return
        for key, value in body.items():
            result[key] = value
            result.key_marks[key] = mark_of(body, key) or mark  # type: ignore[assignment]

    def expand_sequence(self, node: Any, scope: Scope, path: str, kind: str | None) -> YList:
        result = YList((), getattr(node, "mark", None))
        matched: bool | None = None
        for index, item in enumerate(node):
            mark = mark_of(node, index)
            item_path = join_path(path, index)
            if isinstance(item, dict) and len(item) == 1 and is_directive(key := next(iter(item))):
                matched, bodies = self.directive(key, item[key], scope, item_path, mark, matched, kind)
                for body in bodies:
                    self.splice(result, body, mark)
                continue
            matched = None
            if isinstance(item, str) and _WHOLE.match(item):
                value = self.interpolate(item, scope, mark, item_path)
                if isinstance(value, list | dict):  # items from a parameter: their templates are included here
                    self.inserted += 1
                    inserted = value if isinstance(value, list) else [value]
                    value = self.expand_sequence(_positioned(inserted, mark), scope, item_path, kind)
                self.splice(result, value, mark) if isinstance(value, list) else self.append(result, value, mark)
            elif kind and isinstance(item, dict) and "template" in item:
                reference = self.expand_mapping(item, scope, item_path)
                self.splice(result, self.include(reference, kind, scope, item_path, mark), mark)
            else:
                self.append(result, self.expand(item, scope, item_path, mark, kind), mark)
        return result

    @staticmethod
    def append(result: YList, value: Any, mark: Mark | None) -> None:
        result.append(value)
        result.item_marks.append(getattr(value, "mark", None) or mark)

    def splice(self, result: YList, body: Any, mark: Mark | None) -> None:
        if body is None:
            return
        if not isinstance(body, list):
            self.append(result, body, mark)
            return
        for index, value in enumerate(body):
            self.append(result, value, mark_of(body, index) or mark)

    # directives -------------------------------------------------------------------------------------
    def directive(
        self,
        key: str,
        body: Any,
        scope: Scope,
        path: str,
        mark: Mark | None,
        matched: bool | None,
        kind: str | None = None,
    ) -> tuple[bool | None, list[Any]]:
        """Handle ``${{ if/elseif/else/each/insert }}``: (the if-chain state after it, expanded bodies)."""
        condition = _IF.match(key)
        if condition and condition.group(1).lower() == "if":
            chosen = truthy(self.evaluate(condition.group(2), scope, mark, path))
            return chosen, [self.expand(body, scope, path, mark, kind)] if chosen else []
        if condition or _ELSE.match(key):
            if matched is None:
                self.r.add(mark, path, f"'{key}' must follow an '${{{{ if }}}}' or '${{{{ elseif }}}}'")
                return None, []
            if matched:
                return (True if condition else None), []
            chosen = truthy(self.evaluate(condition.group(2), scope, mark, path)) if condition else True
            bodies = [self.expand(body, scope, path, mark, kind)] if chosen else []
            return (chosen if condition else None), bodies
        each = _EACH.match(key)
        if each:
            return None, self.each(each.group(1), each.group(2), body, scope, path, mark, kind)
        if _INSERT.match(key):
            return None, [self.expand(body, scope, path, mark, kind)]
        self.r.add(mark, path, f"unknown template directive '{key}'; supported: if, elseif, else, each, insert")
        return None, []

    def each(
        self, name: str, expression: str, body: Any, scope: Scope, path: str, mark: Mark | None, kind: str | None
    ) -> list[Any]:
        collection = self.evaluate(expression, scope, mark, path)
        if collection is None:
            return []
        if isinstance(collection, dict):
            elements: list[Any] = [{"key": key, "value": value} for key, value in collection.items()]
        elif isinstance(collection, list):
            elements = list(collection)
        else:
            self.r.add(mark, path, f"'each' needs a list or a mapping, got {describe(collection)}")
            return []
        base = self.context(scope)
        results = []
        for element in elements:
            names = {**scope.names, name: element}
            inner = scope_with_names(scope, names)
            self._contexts[id(inner)] = (inner, with_names(base, names))
            results.append(self.expand(body, inner, path, mark, kind))
        return results

    # variables --------------------------------------------------------------------------------------
    def variables_first(self, node: Any, scope: Scope, path: str) -> tuple[Scope, Any]:
        """Expand a mapping's ``variables`` before its other keys, which may use them at compile time."""
        if "variables" not in node:
            return scope, None
        mark = mark_of(node, "variables")
        if _sequential(node["variables"]):
            expanded = self.variables_in_order(node["variables"], scope, join_path(path, "variables"))
        else:
            expanded = self.expand(node["variables"], scope, join_path(path, "variables"), mark, "variables")
        defined = dict(scope.variables)
        if isinstance(expanded, dict):
            defined.update((str(k), text(v)) for k, v in expanded.items() if not isinstance(v, dict | list))
        elif isinstance(expanded, list):
            for item in expanded:
                if isinstance(item, dict) and "name" in item and not isinstance(item.get("value"), dict | list):
                    defined[str(item["name"])] = text(item.get("value"))
        return replace(scope, variables=defined), expanded

    def variables_in_order(self, node: YMap, scope: Scope, path: str) -> YMap:
        """A plain ``name: value`` block whose values use ``${{ variables.x }}``: each value sees the variables
        defined before it ("Expressions": ``compileVar: ${{ variables.staticVar }}``)."""
        result = YMap((), node.mark)
        for name, value in node.items():
            key_mark = mark_of(node, name)
            result[name] = expanded = self.expand(value, scope, join_path(path, name), key_mark)
            result.key_marks[name] = key_mark or result.mark  # type: ignore[assignment]
            if not isinstance(expanded, dict | list):
                scope = replace(scope, variables={**scope.variables, str(name): text(expanded)})
        return result

    def expand_pipeline(self, tree: Any, scope: Scope) -> Any:
        """The whole pipeline expanded; ``extends:`` replaced by its template (root keys kept)."""
        # "Template expressions": trigger and pr are not expanded (and not part of the plan).
        body = YMap(((k, v) for k, v in tree.items() if k not in ("parameters", "trigger", "pr")), tree.mark)
        body.key_marks = tree.key_marks
        result = self.expand_mapping(body, scope, "")
        while isinstance(result.get("extends"), dict):
            extended, scope = self.instantiate(result["extends"], scope, "extends", mark_of(result, "extends"))
            if extended is None:
                break
            merged = YMap(((k, v) for k, v in result.items() if k != "extends"), result.mark)
            merged.key_marks = dict(result.key_marks)
            for key, value in extended.items():
                if key == "variables" and "variables" in merged:
                    value = _concatenate(_as_list(merged["variables"]), _as_list(value))
                merged[key] = value
                merged.key_marks[key] = mark_of(extended, key) or merged.mark  # type: ignore[assignment]
            result = merged
        return result

    # templates --------------------------------------------------------------------------------------
    def include(self, reference: Any, kind: str, scope: Scope, path: str, mark: Mark | None) -> Any:
        """The expanded items of a ``template:`` reference in a list of ``kind`` (steps, jobs, ...)."""
        tree, _ = self.instantiate(reference, scope, path, mark)
        if tree is None:
            return None
        if kind not in tree:
            self.r.add(mark, join_path(path, "template"), f"template '{reference['template']}' has no '{kind}' section")
            return None
        return _as_list(tree[kind]) if kind == "variables" else tree[kind]

    def instantiate(self, reference: Any, scope: Scope, path: str, mark: Mark | None) -> tuple[YMap | None, Scope]:
        """Load a template, bind its parameters and expand it: the expanded file without ``parameters``."""
        name = reference.get("template")
        template_path = join_path(path, "template")
        where = mark_of(reference, "template") or mark
        if not isinstance(name, str) or not name.strip():
            self.r.add(where, template_path, "'template' must name a file")
            return None, scope
        file = self.files.locate(name.strip(), scope.file, where, template_path)
        if file is None:
            return None, scope
        chain = (*scope.chain, str(file))
        if str(file) in scope.chain:
            self.r.add(where, template_path, f"template cycle: {self.files.describe_chain(chain)}")
            return None, scope
        if len(chain) - 1 > MAX_DEPTH:  # the chain starts with the pipeline itself
            self.r.add(
                where,
                template_path,
                f"templates nested deeper than {MAX_DEPTH} levels: {self.files.describe_chain(chain)}",
            )
            return None, scope
        loaded = self.files.load(file, where, template_path)
        if loaded is None:
            return None, scope
        source, declared = loaded
        given = reference.get("parameters") or {}
        if not isinstance(given, dict):
            self.r.add(
                mark_of(reference, "parameters") or where,
                join_path(path, "parameters"),
                "expected a mapping of parameters",
            )
            return None, scope
        values, problems = bind(declared, given, untyped_section=is_untyped(source.tree.get("parameters")))
        for _, problem in problems:
            self.r.add(where, join_path(path, "parameters"), f"template '{name}': {problem}")
        if problems:
            return None, scope
        for parameter in declared:  # typed lists are read where given: their templates are relative to it
            kind = _LIST_PARAMETERS.get(parameter.type)
            if kind and parameter.name in given and isinstance(values[parameter.name], list):
                value_path = join_path(join_path(path, "parameters"), parameter.name)
                value_mark = mark_of(given, parameter.name) or where
                listed = _positioned(values[parameter.name], value_mark)
                values[parameter.name] = self.expand_sequence(listed, scope, value_path, kind)
        inner = Scope(str(file), values, scope.variables, {}, chain)
        key = self._expansion_key(file, values, scope.variables, chain)
        done = self._expanded.get(key) if key is not None else None
        if done is not None:
            self.budget.reuse(done.nodes, done.text, where, template_path)
            return done.tree, inner
        budget, diagnostics, inserted = self.budget, len(self.r.diagnostics), self.inserted
        nodes, text_built = budget.nodes, budget.text
        body = YMap(((k, v) for k, v in source.tree.items() if k != "parameters"), source.tree.mark)
        body.key_marks = source.tree.key_marks
        tree = self.expand_mapping(body, inner, "")
        # Kept for reuse only when it is the template's alone: no problem reported (their paths name this
        # reference) and no structure from an expression in it (a parameter's steps keep the caller's marks).
        if key is not None and len(self.r.diagnostics) == diagnostics and self.inserted == inserted:
            self._expanded[key] = _Expanded(tree, budget.nodes - nodes, budget.text - text_built)
        return tree, inner

    def _expansion_key(
        self, file: Path, values: dict[str, Any], variables: Mapping[str, Any], chain: tuple[str, ...]
    ) -> tuple[Any, ...] | None:
        """What a template's expansion depends on, hashable; None when a value has no such form."""
        cached = self._variable_keys.get(id(variables))
        if cached is None or cached[0] is not variables:  # the entry keeps its mapping alive: ids stay unique
            variables_key = _value_key(dict(variables))
            if variables_key is None:
                return None
            cached = self._variable_keys[id(variables)] = (variables, variables_key)
        values_key = _value_key(values)
        if values_key is None:
            return None
        return (str(file), values_key, cached[1], chain)


@dataclass(frozen=True, slots=True)
class _Expanded:
    """A template's expanded tree, and the work it took (counted again each time it is reused)."""

    tree: YMap
    nodes: int
    text: int


_SCALARS = (str, bool, int, float, type(None))


def _value_key(value: Any) -> Any:
    """A hashable form of a parameter value that tells apart what expressions tell apart (1, '1', True,
    1.0): None when the value is not plain data."""
    cls = value.__class__
    if cls is str:
        return value
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            item_key = _value_key(item)
            if item_key is None or not isinstance(key, str):
                return None
            items.append((key, item_key))
        return ("{}", tuple(items))
    if isinstance(value, list):
        keys = []
        for item in value:
            item_key = _value_key(item)
            if item_key is None:
                return None
            keys.append(item_key)
        return ("[]", tuple(keys))
    if isinstance(value, _SCALARS):
        return (cls.__name__, value)
    return None


def _sequential(variables: Any) -> bool:
    """A mapping of variables without directives or expression keys, where a value uses a compile-time expression."""
    if not isinstance(variables, YMap) or any(not isinstance(key, str) or "${{" in key for key in variables):
        return False
    return any(isinstance(value, str) and "${{" in value for value in variables.values())


def _positioned(value: Any, mark: Mark | None) -> Any:
    """Structure produced by an expression, marked at the expression so later errors have a place."""
    if isinstance(value, YMap | YList):
        return value
    if isinstance(value, dict):
        result = YMap(value.items(), mark)
        result.key_marks = {}
        return result
    result_list = YList(value, mark)
    result_list.item_marks = [mark] * len(value)
    return result_list


def _as_list(variables: Any) -> YList:
    """Variables in list form (a mapping ``name: value`` becomes ``- name: .. value: ..`` entries)."""
    if isinstance(variables, dict):
        result = YList((), getattr(variables, "mark", None))
        for name, value in variables.items():
            entry = YMap((("name", name), ("value", value)), mark_of(variables, name))
            entry.key_marks = {"name": mark_of(variables, name), "value": mark_of(variables, name)}  # type: ignore[dict-item]
            result.append(entry)
            result.item_marks.append(mark_of(variables, name))
        return result
    if isinstance(variables, YList):
        return variables
    return _positioned(list(variables or []), None)


def _concatenate(first: YList, second: YList) -> YList:
    result = YList((), first.mark or second.mark)
    for part in (first, second):
        for index, value in enumerate(part):
            result.append(value)
            result.item_marks.append(mark_of(part, index))
    return result
