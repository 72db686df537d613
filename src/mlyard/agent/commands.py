"""Logging commands (`##vso[area.action key=value;...]data`) read from a step's output.

Follows the Microsoft docs page "Logging commands": task.setvariable (isOutput, isSecret, isReadOnly),
task.setsecret, task.logissue, task.complete, task.prependpath, build.addbuildtag,
build.updatebuildnumber. Property values and data are unescaped as the agent does (`%3B` `;`,
`%0D` CR, `%0A` LF, `%5D` `]`, `%25` and `%AZP25` `%`). Unknown commands are a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mlyard.agent.masking import MASK
from mlyard.agent.state import JobState, StepRun
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES

PREFIX = "##vso["
_ESCAPES = {"%AZP25": "%", "%25": "%", "%3B": ";", "%0D": "\r", "%0A": "\n", "%5D": "]"}
_ESCAPE = re.compile("|".join(re.escape(key) for key in _ESCAPES), re.IGNORECASE)
_RESULTS = {result.lower(): result for result in (SUCCEEDED, SUCCEEDED_WITH_ISSUES, FAILED)}  # task.complete


def unescape(value: str) -> str:
    return _ESCAPE.sub(lambda match: _ESCAPES[match.group(0).upper()], value)


@dataclass(frozen=True)
class Command:
    area: str  # lower case, e.g. "task"
    action: str  # lower case, e.g. "setvariable"
    properties: dict[str, str]  # keys lower case
    data: str


def parse_command(line: str) -> Command | None:
    """The logging command in a line of output, None when there is none (or it is malformed)."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    head, data = line[start + len(PREFIX) : end], line[end + 1 :]
    name, _, props = head.strip().partition(" ")
    area, dot, action = name.partition(".")
    if not dot or not area or not action:
        return None
    properties: dict[str, str] = {}
    for part in props.split(";"):
        key, eq, value = part.partition("=")
        if key.strip() and eq:
            properties[key.strip().lower()] = unescape(value)
    return Command(area.lower(), action.lower(), properties, unescape(data.rstrip("\r\n")))


def _without_secrets(job: JobState, run: StepRun, what: str, value: str) -> str:
    """``value`` with the job's secrets masked, and a warning when it held one: a step cannot make the
    server store a secret in plain text (build number, tags, output variables)."""
    masked = job.masker.mask(value)
    if masked != value:
        run.warning(f"{what} contains a secret value: it is stored masked ({MASK}); "
                    "pass secrets to later steps and jobs as secret variables")  # fmt: skip
    return masked


def _flag(command: Command, key: str) -> bool:
    return command.properties.get(key, "").strip().lower() == "true"


def _set_variable(command: Command, job: JobState, run: StepRun) -> None:
    name = command.properties.get("variable", "").strip()
    if not name:
        run.warning("##vso[task.setvariable] needs a 'variable' property; the command was ignored")
        return
    secret, output = _flag(command, "issecret"), _flag(command, "isoutput")
    value = command.data
    if secret:
        job.add_secret(value)
    readonly = _flag(command, "isreadonly")
    if output:
        # Later steps of the job see it as $(step.name) and STEP_NAME; later jobs through dependencies.
        qualified = f"{run.step.name}.{name}"
        problem = job.variables.set(qualified, value, secret=secret, readonly=readonly)
        if not problem:
            reported = value if secret else _without_secrets(job, run, f"output variable '{qualified}'", value)
            (job.secret_outputs if secret else job.outputs)[qualified] = reported
            (job.outputs if secret else job.secret_outputs).pop(qualified, None)
    else:
        problem = job.variables.set(name, value, secret=secret, readonly=readonly)
    if problem:
        run.warning(problem)


def _log_issue(command: Command, job: JobState, run: StepRun) -> None:
    kind = command.properties.get("type", "").strip().lower()
    if kind not in ("warning", "error"):
        run.warning(f"##vso[task.logissue] type must be 'warning' or 'error', not '{kind}'; logged as a warning")
        kind = "warning"
    where = command.properties.get("sourcepath", "")
    if where and command.properties.get("linenumber"):
        where += f":{command.properties['linenumber']}"
        if command.properties.get("columnnumber"):
            where += f":{command.properties['columnnumber']}"
    message = f"{where}: {command.data}" if where else command.data
    (run.error if kind == "error" else run.warning)(message)


def _complete(command: Command, job: JobState, run: StepRun) -> None:
    value = command.properties.get("result", "Succeeded").strip().lower()
    result = _RESULTS.get(value)
    if result is None:
        run.warning(f"##vso[task.complete] result '{value}' is not one of Succeeded, SucceededWithIssues, Failed")
        return
    run.completed_result = result


def _prepend_path(command: Command, job: JobState, run: StepRun) -> None:
    if command.data.strip():
        job.prepend_path.insert(0, command.data.strip())


def _set_secret(command: Command, job: JobState, run: StepRun) -> None:
    job.add_secret(command.data)


def _add_tag(command: Command, job: JobState, run: StepRun) -> None:
    tag = _without_secrets(job, run, "the build tag", command.data.strip())
    if ":" in tag:
        run.warning(f"build tag '{tag}' contains ':', which tags cannot contain; it was not added")
    elif tag and tag not in job.tags:
        job.tags.append(tag)


def _build_number(command: Command, job: JobState, run: StepRun) -> None:
    number = _without_secrets(job, run, "the build number", command.data.strip())
    if number:
        job.build_number = number
        job.variables.put("Build.BuildNumber", number)


_HANDLERS: dict[tuple[str, str], Callable[[Command, JobState, StepRun], None]] = {
    ("task", "setvariable"): _set_variable,
    ("task", "setsecret"): _set_secret,
    ("task", "logissue"): _log_issue,
    ("task", "complete"): _complete,
    ("task", "prependpath"): _prepend_path,
    ("build", "addbuildtag"): _add_tag,
    ("build", "updatebuildnumber"): _build_number,
}


def handle_line(line: str, job: JobState, run: StepRun) -> None:
    """Apply the logging command in a line of output, if any."""
    command = parse_command(line)
    if command is None:
        return
    handler = _HANDLERS.get((command.area, command.action))
    if handler is None:
        supported = ", ".join(f"{area}.{action}" for area, action in _HANDLERS)
        run.warning(f"logging command '{command.area}.{command.action}' is not supported (supported: {supported})")
        return
    handler(command, job, run)


__all__ = ["Command", "handle_line", "parse_command", "unescape"]
