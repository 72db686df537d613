"""Normalise the steps of an expanded, validated job into :class:`Step` objects.

Every step becomes a task with canonical inputs: ``script`` runs CmdLine@2, ``bash`` Bash@3 (inline),
``pwsh`` and ``powershell`` PowerShell@2 (inline; ``pwsh: true`` for the first), ``publish``
PublishPipelineArtifact@1 and ``download`` DownloadPipelineArtifact@2; ``checkout`` keeps
its own kind. Steps without ``name`` get a stable one from their task (``CmdLine``, ``CmdLine2``, ...).
"""

from __future__ import annotations

from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions import parse_expression
from mlyard.pipelines.model import Step
from mlyard.pipelines.parameters import text
from mlyard.pipelines.schema import join_path
from mlyard.pipelines.source import Reporter
from mlyard.pipelines.tasks import extension_task_message, find_task, is_extension_task

DEFAULT_CONDITION = "succeeded()"
_SHORTCUT_TASKS = {"script": "CmdLine@2", "bash": "Bash@3", "publish": "PublishPipelineArtifact@1"}
_SHORTCUT_TASKS |= {"download": "DownloadPipelineArtifact@2", "pwsh": "PowerShell@2", "powershell": "PowerShell@2"}
_CHECKOUT_OPTIONS = ("clean", "fetchDepth", "fetchTags", "lfs", "persistCredentials", "submodules", "path")


def flag(value: Any, default: bool = False) -> bool:
    """A YAML boolean that may have become a string through an expression."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def number(value: Any, default: int) -> int:
    try:
        return default if value is None else int(str(value).strip())
    except ValueError:
        return default


def input_text(value: Any) -> Any:
    """Task inputs are strings; booleans read ``true``/``false`` as task inputs do."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return text(value) if value is not None else None


def check_condition(value: Any, node: Any, path: str, reporter: Reporter) -> str:
    """The condition string (default ``succeeded()``), syntax-checked now, evaluated by the runner."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_CONDITION
    condition = text(value)
    try:
        parse_expression(condition)
    except ExpressionError as exc:
        reporter.at(node, "condition", join_path(path, "condition"), f"invalid condition '{condition}': {exc.message}")
    return condition


_KINDS = ("script", "bash", "pwsh", "powershell", "checkout", "publish", "upload", "download", "task")
_POWERSHELL_OPTIONS = ("errorActionPreference", "failOnStderr", "ignoreLASTEXITCODE", "workingDirectory")


def build_steps(
    items: Any, path: str, job_name: str, reporter: Reporter, built: dict[int, tuple[Any, str, Step]] | None = None
) -> tuple[Step, ...]:
    """The steps of one job; duplicate explicit names are errors, generated names avoid them. ``built`` keeps
    the steps built without a problem by id of their item (the entry keeps the item alive): an item that a
    template included again with the same values put in several jobs (mlyard.pipelines.templates) is built
    once for each name it gets (a Step is immutable)."""
    items = list(items or ())
    names = [text(item["name"]) if item.get("name") is not None else None for item in items]
    used: set[str] = set()
    for index, name in enumerate(names):
        if name is not None and name in used:
            message = f"duplicate step name '{name}' in job '{job_name}'"
            reporter.at(items[index], "name", join_path(join_path(path, index), "name"), message)
        used.update((name,) if name else ())
    counts: dict[str, int] = {}
    result: list[Step] = []
    for index, item in enumerate(items):
        kind = next((key for key in _KINDS if key in item), None)
        if kind is None:  # not a step validation knows as one (a template left unexpanded): never a crash
            reporter.at(items, index, join_path(path, index), f"expected a step; supported kinds: {', '.join(_KINDS)}")
            continue
        kind = "publish" if kind == "upload" else kind  # `upload` is the old name of `publish`
        name = names[index]
        if not name:
            base = _name_base(kind, item)
            while True:
                counts[base] = counts.get(base, 0) + 1
                name = base if counts[base] == 1 else f"{base}{counts[base]}"
                if name not in used:
                    break
            used.add(name)
        known = built.get(id(item)) if built is not None else None
        if known is not None and known[0] is item and known[1] == name:
            step: Step | None = known[2]
        else:
            problems = len(reporter.diagnostics)
            step = build_step(kind, item, join_path(path, index), name, reporter)
            if built is not None and step is not None and len(reporter.diagnostics) == problems:
                built[id(item)] = (item, name, step)
        if step is not None:
            result.append(step)
    return tuple(result)


def _name_base(kind: str, item: Any) -> str:
    """What a generated step name starts with: the task name without version, or ``Checkout``."""
    if kind == "checkout":
        return "Checkout"
    if kind == "task":
        spec = find_task(text(item["task"]))
        return spec.name.split("@")[0] if spec else text(item["task"]).split("@")[0].split(".")[-1] or "Task"
    return _SHORTCUT_TASKS[kind].split("@")[0]


def build_step(kind: str, item: Any, path: str, name: str, reporter: Reporter) -> Step | None:
    """One step (None when it adds nothing to run, such as ``download: none``)."""
    task, inputs = _inputs(kind, item, path, reporter)
    if task is None and kind != "checkout":
        return None
    default_display = f"Checkout {inputs['repository']}" if kind == "checkout" else name
    spec = find_task(task) if task else None
    return Step(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        display_name=text(item.get("displayName")) if item.get("displayName") is not None else default_display,
        task=task,
        inputs=inputs,
        env={str(key): text(value) for key, value in (item.get("env") or {}).items()},
        condition=check_condition(item.get("condition"), item, path, reporter),
        continue_on_error=flag(item.get("continueOnError")),
        timeout_in_minutes=number(item.get("timeoutInMinutes"), 0),
        enabled=flag(item.get("enabled"), True),
        retry_count_on_task_failure=number(item.get("retryCountOnTaskFailure"), 0),
        unsupported=_unsupported(task, spec, inputs),
    )


def _unsupported(task: str | None, spec: Any, inputs: dict[str, Any]) -> str | None:
    """Why mlyard cannot run the step (the message validation reports), None when it can."""
    if task is None:
        return None
    if spec is None:  # a Marketplace extension task (validation rejected every other unknown task)
        return extension_task_message(task)
    return spec.unsupported(inputs)


def _inputs(kind: str, item: Any, path: str, reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
    """The task a step runs and its canonical inputs (spec defaults filled in)."""
    if kind == "checkout":
        options = {key: input_text(item[key]) for key in _CHECKOUT_OPTIONS if key in item}
        return None, {"repository": text(item["checkout"]), **options}
    if kind == "download":
        source = text(item["download"])
        if source == "none":  # turns off the automatic download of deployment jobs: nothing to run
            return None, {}
        if source != "current":  # a pipeline resource (checked by resources.check_downloads)
            given = {key: value for key, value in _shortcut_inputs(kind, item).items() if value is not None}
            given = {"patterns": "**", **pipeline_download(source), **given, "buildType": "specific"}
            return "DownloadPipelineArtifact@2", {key: input_text(value) for key, value in given.items()}
    if kind in _SHORTCUT_TASKS:
        task = _SHORTCUT_TASKS[kind]
        given = _shortcut_inputs(kind, item)
    else:
        reference = text(item["task"])
        spec = find_task(reference)
        if spec is None:  # an extension task is kept as written (any other was reported by validation)
            given = {str(key): input_text(value) for key, value in (item.get("inputs") or {}).items()}
            return (reference.strip(), given) if is_extension_task(reference) else (None, {})
        task = spec.name
        given = {spec.canonical_input(str(key)) or str(key): value for key, value in (item.get("inputs") or {}).items()}
    spec = find_task(task)
    assert spec is not None
    inputs = {key: input_text(value) for key, value in spec.inputs.items() if value is not None}
    inputs.update((key, input_text(value)) for key, value in given.items() if value is not None)
    return task, inputs


def pipeline_download(alias: str) -> dict[str, str]:
    """The inputs that download artifacts of the run of pipeline resource ``alias`` (``download: alias``);
    files go to ``$(Pipeline.Workspace)/<alias>/<artifact>`` as in Azure."""
    return {
        "buildType": "specific",
        "pipeline": alias,
        "runId": f"$(resources.pipeline.{alias}.runID)",
        "path": f"$(Pipeline.Workspace)/{alias}",
    }


def _shortcut_inputs(kind: str, item: Any) -> dict[str, Any]:
    if kind == "script":
        return {
            "script": item["script"],
            "workingDirectory": item.get("workingDirectory"),
            "failOnStderr": item.get("failOnStderr"),
        }
    if kind == "bash":
        return {
            "targetType": "inline", "script": item["bash"], "workingDirectory": item.get("workingDirectory"),
            "failOnStderr": item.get("failOnStderr"),
        }  # fmt: skip
    if kind in ("pwsh", "powershell"):  # "steps.pwsh", "steps.powershell": PowerShell@2 with an inline script
        options = {key: item.get(key) for key in _POWERSHELL_OPTIONS}
        return {"targetType": "inline", "script": item[kind], "pwsh": kind == "pwsh", **options}
    if kind == "publish":
        target = item["publish"] if "publish" in item else item["upload"]
        return {"targetPath": target, "artifact": item.get("artifact")}
    return {
        "buildType": "current",
        "artifact": item.get("artifact"),
        "patterns": item.get("patterns"),
        "path": item.get("path"),
    }


__all__ = ["DEFAULT_CONDITION", "build_steps", "check_condition", "flag", "number"]
