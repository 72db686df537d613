"""Parameters: declarations (``parameters:`` of a pipeline or template) and type-checked values.

Follows "Runtime parameters" and "Template usage reference": a parameter has a ``name``, a ``type``
(default ``string``), an optional ``default`` and ``values``; a value of the wrong type, outside
``values``, a missing value without default and an unexpected parameter are errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from mlyard.pipelines.errors import PipelineError
from mlyard.pipelines.model import PARAMETER_TYPES, Parameter, Pipeline
from mlyard.pipelines.schema import describe, is_directive, join_path
from mlyard.pipelines.source import Mark, Reporter, mark_of

_DECLARATION_KEYS = ("name", "displayName", "type", "default", "values")
_TYPES_BY_LOWER = {name.lower(): name for name in PARAMETER_TYPES}


def text(value: Any) -> str:
    """A YAML scalar as Azure reads it as a string (``true``/``false`` as written, ``1`` for 1.0, '' for null).

    Variables and untyped parameters keep the text of the YAML: ``flag: true`` is ``true`` in ``$(flag)``
    and ``${{ variables.flag }}``. (The result of an expression inserted into a string follows the
    casting rules of "Expressions" instead: a boolean reads ``True``/``False``.)
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def parse_declarations(value: Any, owner: Any, key: Any, path: str, reporter: Reporter) -> tuple[Parameter, ...]:
    """Read a ``parameters:`` section: the list form, or the legacy mapping form ``name: default``."""
    if value is None:
        return ()
    if isinstance(value, dict):  # untyped: scalars are strings (lists and mappings stay structures)
        return tuple(
            Parameter(name, "object", None, untyped(default), True, None, mark_of(value, name))
            for name, default in value.items()
            if not is_directive(name)
        )
    if not isinstance(value, list):
        reporter.at(owner, key, path, f"expected a list of parameters, got {describe(value)}")
        return ()
    declared: dict[str, Parameter] = {}
    for index, item in enumerate(value):
        parameter = _declaration(item, value, index, join_path(path, index), reporter)
        if parameter is None:
            continue
        if parameter.name in declared:
            reporter.at(value, index, join_path(path, index), f"parameter '{parameter.name}' is declared twice")
            continue
        declared[parameter.name] = parameter
    return tuple(declared.values())


def _declaration(item: Any, owner: Any, index: int, path: str, reporter: Reporter) -> Parameter | None:
    if not isinstance(item, dict):
        reporter.at(owner, index, path, f"expected a parameter (a mapping with name and type), got {describe(item)}")
        return None
    for key in item:
        if key not in _DECLARATION_KEYS:
            message = f"unknown key '{key}'; supported keys: {', '.join(sorted(_DECLARATION_KEYS))}"
            reporter.at(item, key, join_path(path, key), message)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        reporter.at(owner, index, path, "a parameter needs a 'name'")
        return None
    kind = _TYPES_BY_LOWER.get(str(item.get("type", "string")).lower())
    if kind is None:
        message = f"unknown parameter type '{item.get('type')}'; supported types: {', '.join(PARAMETER_TYPES)}"
        reporter.at(item, "type", join_path(path, "type"), message)
        return None
    values = item.get("values")
    if values is not None and not isinstance(values, list):
        reporter.at(
            item, "values", join_path(path, "values"), f"expected a list of allowed values, got {describe(values)}"
        )
        values = None
    parameter = Parameter(
        name, kind, item.get("displayName"), item.get("default"), "default" in item,
        tuple(values) if values is not None else None, mark_of(owner, index),
    )  # fmt: skip
    if parameter.has_default:
        _, problem = coerce(parameter, parameter.default)
        if _has_expression(parameter.default):  # "You can only use literals for parameter default values"
            problem = f"parameter '{name}': a default must be a literal, without ${{{{ }}}} expressions"
        if problem:
            reporter.at(item, "default", join_path(path, "default"), f"default of {problem}")
    return parameter


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(_has_expression(key) or _has_expression(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_expression(item) for item in value)
    return False


def coerce(parameter: Parameter, value: Any) -> tuple[Any, str | None]:
    """The value converted to the parameter's type, or an error message naming parameter and value."""
    kind, name = parameter.type, parameter.name
    converted: Any = value
    if kind == "string":
        if isinstance(value, dict | list):
            return value, f"parameter '{name}': expected a string, got {describe(value)}"
        converted = text(value)
    elif kind == "number":
        converted = _number(value)
        if converted is None:
            return value, f"parameter '{name}': expected a number, got {describe(value)}"
    elif kind == "boolean":
        if isinstance(value, bool):
            converted = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            converted = value.strip().lower() == "true"
        else:
            return value, f"parameter '{name}': expected a boolean (true or false), got {describe(value)}"
    elif kind != "object":
        problem = _structure(kind, value)
        if problem:
            return value, f"parameter '{name}': expected {problem}, got {describe(value)}"
        converted = [] if value is None else value
    if parameter.values is not None and not _allowed(converted, parameter.values):
        allowed = ", ".join(text(choice) for choice in parameter.values)
        return value, f"parameter '{name}': value '{text(converted)}' is not allowed; allowed values: {allowed}"
    return converted, None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value.strip())
            except ValueError:
                continue
    return None


def _structure(kind: str, value: Any) -> str | None:
    """What a step/job/stage (list) parameter expects, when ``value`` does not fit."""
    single = kind.removesuffix("List")
    if kind.endswith("List"):
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            return f"a list of {single}s"
        return None
    return None if isinstance(value, dict) else f"a {single} (a mapping)"


def _allowed(value: Any, values: tuple[Any, ...]) -> bool:
    return any(value == choice or text(value) == text(choice) for choice in values)


def untyped(value: Any) -> Any:
    """A value of an untyped parameter: scalars become strings as written, structures stay as they are."""
    return value if isinstance(value, dict | list) else text(value)


def is_untyped(section: Any) -> bool:
    """Whether a template's ``parameters:`` section (None when absent) leaves its parameters untyped.

    A template without the section, or with the old mapping form (``name: default``), accepts any
    parameter (a template forwarding them with ``${{ each parameter in parameters }}`` relies on it) and
    reads them as strings, lists and mappings ("Template usage reference").
    """
    return section is None or isinstance(section, dict)


def bind(
    declared: tuple[Parameter, ...], given: Mapping[str, Any], *, runtime: bool = False, untyped_section: bool = False
) -> tuple[dict[str, Any], list[tuple[str | None, str]]]:
    """Values of every declared parameter from ``given`` (or defaults), with (name, problem) pairs.

    ``untyped_section``: the parameters are untyped (see :func:`is_untyped`): undeclared ones are accepted,
    and every given scalar is a string.
    """
    values: dict[str, Any] = {}
    problems: list[tuple[str | None, str]] = []
    names = {parameter.name for parameter in declared}
    for name in given:
        if name not in names and not untyped_section:
            listing = ", ".join(sorted(names)) or "none"
            problems.append((None, f"unexpected parameter '{name}'; declared parameters: {listing}"))
    for parameter in declared:
        if parameter.name in given:
            value = untyped(given[parameter.name]) if untyped_section else given[parameter.name]
            if runtime and isinstance(value, str) and parameter.type not in ("string", "number", "boolean"):
                value = _parse_structured(value)
        elif parameter.has_default:
            value = parameter.default
        else:
            problems.append(
                (parameter.name, f"a value for parameter '{parameter.name}' is required (it has no default)")
            )
            continue
        values[parameter.name], problem = coerce(parameter, value)
        if problem:
            problems.append((parameter.name, problem))
    if untyped_section:
        values.update((str(name), untyped(value)) for name, value in given.items() if name not in names)
    return values, problems


def _parse_structured(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def resolve_parameters(pipeline: Pipeline, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Runtime parameter values (CLI strings converted) type-checked against the pipeline's declarations.

    Raises :class:`PipelineError` listing every problem, each at the parameter's declaration.
    """
    values, problems = bind(pipeline.parameters, dict(given or {}), runtime=True)
    if problems:
        reporter = Reporter(pipeline.file)
        marks: dict[str, Mark | None] = {p.name: p.mark for p in pipeline.parameters}
        root = mark_of(pipeline.tree, "parameters") if isinstance(pipeline.tree, dict) else None
        for name, problem in problems:
            reporter.add(marks.get(name) if name else root, "parameters", problem)
        raise PipelineError(reporter.diagnostics)
    return values
