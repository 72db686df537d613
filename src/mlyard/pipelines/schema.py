"""Structural validation of a pipeline tree: known keys, value shapes, step kinds, tasks and inputs.

The same checks run twice: on the file as written (``raw=True``: template expressions may stand for any
value, and the bodies of ``${{ if }}``/``${{ each }}`` are left to the second pass, since a branch never
taken is not part of the pipeline) and on the expanded tree before compiling (``raw=False``). Every
problem is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlyard.pipelines.source import Reporter
from mlyard.pipelines.tasks import PREFERENCES, extension_task_message, find_task, is_extension_task, unknown_task

DIRECTIVE = re.compile(r"^\$\{\{\s*(if\b|elseif\b|else\s*\}\}|each\b|insert\s*\}\})", re.IGNORECASE)

STEP_COMMON = {
    "displayName": "string", "name": "identifier", "env": "env", "condition": "string",
    "continueOnError": "bool", "timeoutInMinutes": "int", "enabled": "bool",
    "retryCountOnTaskFailure": "int",
}  # fmt: skip
_SCRIPT = {"workingDirectory": "string", "failOnStderr": "bool"}
_POWERSHELL = {"errorActionPreference": "preference", "ignoreLASTEXITCODE": "bool", **_SCRIPT}
TEMPLATE_REF = {"template": "string", "parameters": "mapping"}
STEP_KINDS: dict[str, dict[str, str]] = {
    "bash": {"bash": "string", **_SCRIPT, **STEP_COMMON},
    "checkout": {
        "checkout": "string", "clean": "bool", "fetchDepth": "int", "fetchTags": "bool", "lfs": "bool",
        "persistCredentials": "bool", "submodules": "string", "path": "string", **STEP_COMMON,
    },
    "download": {"download": "string", "artifact": "string", "patterns": "string", "path": "string", **STEP_COMMON},
    "publish": {"publish": "string", "artifact": "string", **STEP_COMMON},
    "upload": {"upload": "string", "artifact": "string", **STEP_COMMON},  # Azure's deprecated name of publish
    "powershell": {"powershell": "string", **_POWERSHELL, **STEP_COMMON},
    "pwsh": {"pwsh": "string", **_POWERSHELL, **STEP_COMMON},
    "script": {"script": "string", **_SCRIPT, **STEP_COMMON},
    "task": {"task": "task", "inputs": "mapping", **STEP_COMMON},
    "template": TEMPLATE_REF,
}  # fmt: skip
_JOB_COMMON = {
    "displayName": "string", "dependsOn": "names", "condition": "string", "continueOnError": "bool",
    "timeoutInMinutes": "int", "cancelTimeoutInMinutes": "int", "variables": "variables", "pool": "pool",
    "workspace": "workspace", "templateContext": "any", "container": "container",
}  # fmt: skip
JOB_KINDS: dict[str, dict[str, str]] = {
    "job": {"job": "identifier", "steps": "steps", "strategy": "jobStrategy", **_JOB_COMMON},
    "deployment": {"deployment": "identifier", "environment": "environment", "strategy": "strategy", **_JOB_COMMON},
    "template": TEMPLATE_REF,
}
STAGE_KINDS: dict[str, dict[str, str]] = {
    "stage": {
        "stage": "identifier", "displayName": "string", "dependsOn": "names", "condition": "string",
        "variables": "variables", "jobs": "jobs", "pool": "pool", "lockBehavior": "string",
        "isSkippable": "bool", "templateContext": "any",
    },
    "template": TEMPLATE_REF,
}  # fmt: skip
VARIABLE_KINDS: dict[str, dict[str, str]] = {
    "name": {"name": "string", "value": "scalar", "readonly": "bool"},
    "group": {"group": "string"},
    "template": TEMPLATE_REF,
}
PIPELINE = {
    "name": "string", "appendCommitMessageToRunName": "bool", "trigger": "any", "pr": "any", "schedules": "any",
    "parameters": "any", "variables": "variables", "pool": "pool", "stages": "stages", "jobs": "jobs",
    "steps": "steps", "extends": "extends", "lockBehavior": "string", "workspace": "workspace",
    "timeoutInMinutes": "int", "cancelTimeoutInMinutes": "int", "continueOnError": "bool",
    "strategy": "jobStrategy",
    "resources": "any", "container": "container",  # resources: checked by mlyard.pipelines.resources
}  # fmt: skip
OBJECTS: dict[str, dict[str, str]] = {
    "pool": {"name": "string", "vmImage": "string", "demands": "names"},
    "workspace": {"clean": "clean"},
    "environment": {
        "name": "string",
        "resourceName": "string",
        "resourceId": "any",
        "resourceType": "string",
        "tags": "any",
    },
    "strategy": {"runOnce": "runOnce"},
    "jobStrategy": {"matrix": "any", "parallel": "int", "maxParallel": "int"},  # checked in pipelines.strategy
    "runOnce": {"deploy": "hook"},
    "hook": {"steps": "steps", "pool": "pool"},
    "extends": TEMPLATE_REF,
    "container": {
        "image": "string", "endpoint": "string", "env": "env", "options": "string", "ports": "names",
        "volumes": "names", "mapDockerSocket": "bool", "mountReadOnly": "any", "type": "string",
        "azureSubscription": "string", "resourceGroup": "string", "registry": "string", "repository": "string",
        "localImage": "bool", "alias": "string",
    },
}  # fmt: skip
# Azure keys mlyard knows but does not run: reported as "not supported" rather than "unknown".
UNSUPPORTED = frozenset(
    {"services", "uses",
     "downloadBuild", "getPackage", "reviewApp", "restoreCache", "rolling", "canary",
     "preDeploy", "routeTraffic", "postRouteTraffic", "on", "target"}
)  # fmt: skip
DEPRECATED = frozenset({"upload"})  # accepted, but not offered in messages (Azure's schema: doNotSuggest)
# Objects whose Microsoft schema has "additionalProperties": true (1ES pools add `image`, `os`, ...).
EXTENSIBLE = frozenset({"pool"})
ENUMS = {"clean": ("outputs", "resources", "all"), "preference": PREFERENCES}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAMES = {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number", float: "a number"}


def describe(value: Any) -> str:
    """How a value reads in an error: 'a mapping', 'a list', or the scalar in quotes."""
    if value is None:
        return "nothing (null)"
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind) and kind in (dict, list):
            return name
    return f"'{value}'"


def is_directive(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("${{") and bool(DIRECTIVE.match(key))


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Validator:
    """Walks a pipeline tree; ``raw`` allows template expressions anywhere a value may stand."""

    def __init__(self, reporter: Reporter, *, raw: bool) -> None:
        self.r = reporter
        self.raw = raw
        # Items found valid, by id (the entry keeps the item alive: ids stay unique): a template included again
        # with the same values puts the same items in several places (mlyard.pipelines.templates), checked once.
        self._valid: dict[int, tuple[Any, dict[str, dict[str, str]]]] = {}

    # containers -------------------------------------------------------------------------------------
    def entries(self, node: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str, Any]]:
        """The (mapping, key, value) entries; in raw mode, not those of directives or expression keys.

        The bodies of ``${{ if }}``/``${{ each }}``/... are checked on what the expansion produces (a
        branch never taken is not part of the pipeline); their expressions are checked by
        :mod:`mlyard.pipelines.syntax`.
        """
        for key, value in node.items():
            if self.raw and is_directive(key) and not isinstance(value, dict | None) and not is_expression(value):
                # `${{ insert }}: ${{ parameters.x }}` is fine; a list or a plain scalar is not
                message = f"the body of a template directive in a mapping must be a mapping, got {describe(value)}"
                self.r.at(node, key, join_path(path, key), message)
            if not (self.raw and is_expression(key)):
                yield node, key, value

    def items(self, node: list, path: str) -> Iterator[tuple[Any, int, Any, str]]:
        """The (sequence, index, item, path) items; in raw mode, not directives or expressions."""
        for index, item in enumerate(node):
            directive = isinstance(item, dict) and len(item) == 1 and is_directive(next(iter(item)))
            if self.raw and (directive or is_expression(item)):
                continue
            yield node, index, item, join_path(path, index)

    # objects ----------------------------------------------------------------------------------------
    def check_object(
        self, node: Any, spec: dict[str, str], parent: Any, key: Any, path: str, *, extensible: bool = False
    ) -> None:
        if not isinstance(node, dict):
            self.r.at(parent, key, path, f"expected a mapping, got {describe(node)}")
            return
        for owner, name, value in self.entries(node, path):
            if name not in spec:
                if not extensible:
                    self.unknown(owner, name, join_path(path, name), "keys", spec)
            else:
                self.check(value, spec[name], owner, name, join_path(path, name))

    def unknown(self, owner: Any, name: str, path: str, what: str, choices: Any) -> None:
        listing = ", ".join(sorted(choices, key=str.lower))
        if name in UNSUPPORTED:
            self.r.at(owner, name, path, f"'{name}' is not supported by mlyard; supported {what}: {listing}")
        else:
            self.r.at(owner, name, path, f"unknown key '{name}'; supported {what}: {listing}")

    def check_kinded(
        self, node: Any, kinds: dict[str, dict[str, str]], what: str, parent: Any, key: Any, path: str
    ) -> None:
        """An item whose kind is the one key among ``kinds`` it has (a step, job, stage or variable); an item
        already found valid (no problem, no notice) as the same kind of item is not checked again."""
        if not isinstance(node, dict):
            self.check_item(node, kinds, what, parent, key, path)
            return
        valid = self._valid.get(id(node))
        if valid is not None and valid[0] is node and valid[1] is kinds:
            return
        problems, notices = len(self.r.diagnostics), len(self.r.unsupported)
        self.check_item(node, kinds, what, parent, key, path)
        if len(self.r.diagnostics) == problems and len(self.r.unsupported) == notices:
            self._valid[id(node)] = (node, kinds)

    def check_item(
        self, node: Any, kinds: dict[str, dict[str, str]], what: str, parent: Any, key: Any, path: str
    ) -> None:
        if not isinstance(node, dict):
            if not (what == "variable" and node is None):
                self.r.at(parent, key, path, f"expected a {what} (a mapping), got {describe(node)}")
            return
        names = [name for _, name, _ in self.entries(node, path)]
        found = [name for name in names if name in kinds]
        listing = ", ".join(sorted(set(kinds) - DEPRECATED))
        if len(found) > 1:
            self.r.at(
                node, found[1], path, f"a {what} has exactly one of the keys {listing}; found: {', '.join(found)}"
            )
            return
        if not found and self.raw and any(is_expression(name) for name in node):
            return  # the kind may come from an expression: checked after expansion
        if not found:
            common = set(STEP_COMMON) if what == "step" else set()
            strays = [name for name in names if name not in common]
            if any(name in UNSUPPORTED for name in strays):  # a known Azure kind: its own keys are not strays
                strays = [name for name in strays if name in UNSUPPORTED]
            for owner, name, _ in self.entries(node, path):
                if name in strays:
                    self.unknown(owner, name, join_path(path, name), f"{what} kinds", set(kinds) - DEPRECATED)
            if not strays:
                self.r.at(parent, key, path, f"a {what} needs one of the keys {listing}")
            return
        self.check_object(node, kinds[found[0]], parent, key, path)
        if found[0] == "template":
            self.require(node, "template", path)
        if found[0] == "task":
            self.check_task(node, path)

    def require(self, node: Any, name: str, path: str) -> None:
        if isinstance(node, dict) and node.get(name) in (None, ""):
            self.r.at(node, name, join_path(path, name), f"'{name}' must not be empty")

    def check_task(self, node: dict[str, Any], path: str) -> None:
        """A task step: a task of Microsoft's schema with known inputs, allowed values and its required
        inputs (errors); a valid task mlyard does not run is a notice (``Reporter.unsupported``)."""
        flat = {name: (owner, value) for owner, name, value in self.entries(node, path)}
        owner, reference = flat["task"]
        if not isinstance(reference, str) or is_expression(reference):
            return
        task_path = join_path(path, "task")
        spec = find_task(reference)
        if spec is None:
            if is_extension_task(reference):
                self.r.note_unsupported(owner, "task", task_path, extension_task_message(reference))
            else:
                self.r.at(owner, "task", task_path, unknown_task(reference))
            return
        _, inputs = flat.get("inputs", (node, None))
        given: dict[str, Any] = {}
        inputs_path = join_path(path, "inputs")
        errors = len(self.r.diagnostics)
        if isinstance(inputs, dict):
            for container, name, value in self.entries(inputs, inputs_path):
                canonical = spec.canonical_input(name)
                if canonical is None:
                    listing = ", ".join(sorted(spec.inputs, key=str.lower))
                    message = f"unknown input '{name}' for task {spec.name}; supported inputs: {listing}"
                    self.r.at(container, name, join_path(inputs_path, name), message)
                    continue
                given[canonical] = value
                self.check_choice(spec.choices.get(canonical), value, container, name, join_path(inputs_path, name))
        if self.raw and isinstance(inputs, dict) and any(is_directive(k) or is_expression(k) for k in inputs):
            return
        for problem in spec.required(given):
            self.r.at(owner, "task", task_path, f"task {spec.name}: {problem}")
        reason = spec.unsupported(given) if len(self.r.diagnostics) == errors else None
        if reason is not None:
            self.r.note_unsupported(owner, "task", task_path, reason)

    def check_choice(self, choices: Any, value: Any, parent: Any, key: Any, path: str) -> None:
        if not choices or is_expression(value) or (isinstance(value, str) and "$(" in value):
            return
        if str(value).lower() not in {choice.lower() for choice in choices}:
            self.r.at(parent, key, path, f"'{value}' is not allowed; allowed values: {', '.join(choices)}")

    # values -----------------------------------------------------------------------------------------
    def check(self, value: Any, kind: str, parent: Any, key: Any, path: str) -> None:
        if kind == "any" or (self.raw and is_expression(value)):
            return
        if kind in ("steps", "jobs", "stages"):
            self.check_list(value, kind, parent, key, path)
        elif kind == "variables":
            self.check_variables(value, parent, key, path)
        elif kind in OBJECTS:
            if kind in ("pool", "environment", "container") and isinstance(value, str | None):
                return
            self.check_object(value, OBJECTS[kind], parent, key, path, extensible=kind in EXTENSIBLE)
            if kind == "extends":
                self.require(value, "template", path)
        elif kind in ENUMS:
            self.check_choice(ENUMS[kind], value, parent, key, path)
        elif kind == "task":
            self.check_scalar(value, "string", parent, key, path)
        else:
            self.check_scalar(value, kind, parent, key, path)

    def check_list(self, value: Any, kind: str, parent: Any, key: Any, path: str) -> None:
        what, kinds = {"steps": ("step", STEP_KINDS), "jobs": ("job", JOB_KINDS), "stages": ("stage", STAGE_KINDS)}[
            kind
        ]
        if value is None:
            return
        if not isinstance(value, list):
            self.r.at(parent, key, path, f"expected a list of {kind}, got {describe(value)}")
            return
        for owner, index, item, item_path in self.items(value, path):
            self.check_kinded(item, kinds, what, owner, index, item_path)

    def check_variables(self, value: Any, parent: Any, key: Any, path: str) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for owner, name, item in self.entries(value, path):
                if isinstance(item, dict | list):
                    message = f"the value of variable '{name}' must be a string, got {describe(item)}"
                    self.r.at(owner, name, join_path(path, name), message)
        elif isinstance(value, list):
            for owner, index, item, item_path in self.items(value, path):
                self.check_kinded(item, VARIABLE_KINDS, "variable", owner, index, item_path)
        else:
            self.r.at(parent, key, path, f"expected a mapping or a list of variables, got {describe(value)}")

    def check_scalar(self, value: Any, kind: str, parent: Any, key: Any, path: str) -> None:
        if kind == "mapping":
            if value is not None and not isinstance(value, dict):
                self.r.at(parent, key, path, f"expected a mapping, got {describe(value)}")
        elif kind == "env":
            self.check_env(value, parent, key, path)
        elif kind == "names":
            names = [item for *_, item, _ in self.items(value, path)] if isinstance(value, list) else [value]
            if any(isinstance(name, dict | list) for name in names):
                self.r.at(parent, key, path, "expected a name or a list of names")
        elif isinstance(value, dict | list):
            self.r.at(parent, key, path, f"expected a {'string' if kind != 'int' else 'number'}, got {describe(value)}")
        elif kind == "bool":
            if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
                self.r.at(parent, key, path, f"expected a boolean (true or false), got {describe(value)}")
        elif kind == "int" and not _whole_number(value):
            self.r.at(parent, key, path, f"expected a whole number, got {describe(value)}")
        elif kind == "identifier" and not _IDENTIFIER.match(str(value)):
            message = f"invalid name '{value}': use only letters, digits and '_', not starting with a digit"
            self.r.at(parent, key, path, message)

    def check_env(self, value: Any, parent: Any, key: Any, path: str) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.r.at(parent, key, path, f"expected a mapping of environment variables, got {describe(value)}")
            return
        for owner, name, item in self.entries(value, path):
            if isinstance(item, dict | list):
                self.r.at(owner, name, join_path(path, name), f"expected a string, got {describe(item)}")


def _whole_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or str(value).strip().isdigit() or (isinstance(value, str) and "$(" in value)


def validate_tree(tree: Any, reporter: Reporter, *, raw: bool, template: bool = False) -> None:
    """Check a whole pipeline (or pipeline template) tree, adding every problem to ``reporter``."""
    validator = Validator(reporter, raw=raw)
    if not isinstance(tree, dict):
        reporter.add(getattr(tree, "mark", None), "", f"a pipeline must be a mapping, got {describe(tree)}")
        return
    validator.check_object(tree, PIPELINE, None, None, "")
    bodies = [name for _, name, _ in validator.entries(tree, "") if name in ("stages", "jobs", "steps", "extends")]
    if len(bodies) > 1:
        message = f"use only one of stages, jobs, steps or extends at the top level; found: {', '.join(bodies)}"
        reporter.at(tree, bodies[1], bodies[1], message)
    elif not bodies and not template and not (raw and any(is_directive(key) for key in tree)):
        reporter.add(tree.mark, "", "a pipeline needs one of the keys stages, jobs, steps or extends")  # type: ignore[attr-defined]
