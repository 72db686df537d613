"""`mlyard pipelines ...`: offline language commands (validate, expand, explain-trigger, eval).

They need no server. The pipelines library is imported inside each command so that the CLI starts fast.
"""


import json
import sys
from pathlib import Path
from typing import Any

import typer

from mlyard.cli.output import print_json
from mlyard.errors import InvalidInput

app = typer.Typer(help="Validate, expand and run pipelines (Azure Pipelines YAML).", no_args_is_help=True)

_VAR_HELP = (
    "A variable KEY=VALUE (repeatable): a predefined one available in templates (Build.SourceBranch, "
    "Build.Reason...) is seen by ${{ }}; any other is a queue-time variable."
)
_PARAM_HELP = "A runtime parameter KEY=VALUE (repeatable); the value is converted to the declared type."
_REPO_HELP = (
    "The files of repository resource ALIAS: a local folder taken as that repository's root (ALIAS=PATH, repeatable)."
)


def _repositories(values: list[str] | None) -> dict[str, Path]:
    folders = {alias: Path(path) for alias, path in _pairs(values, "--repo").items()}
    for alias, folder in folders.items():
        if not folder.is_dir():
            raise InvalidInput(f"--repo {alias}={folder}: not a folder; give the root folder of repository '{alias}'")
    return folders


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} expects KEY=VALUE, got '{item}'")
        pairs[key.strip()] = value
    return pairs


def _split_vars(values: list[str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """--var pairs as (queue-time variables, compile context): the predefined variables Azure makes
    available in templates (``Build.SourceBranch``, ``Build.Reason``...) are seen by ``${{ }}``."""
    from mlyard.pipelines.predefined import is_template_variable, template_context

    pairs = _pairs(values, "--var")
    given = {name: value for name, value in pairs.items() if is_template_variable(name)}
    return {name: value for name, value in pairs.items() if name not in given}, template_context(given)


def _diagnostic(d: Any) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "column": d.column, "path": d.path, "message": d.message}


def _check(
    file: Path, template: bool | None = None, var: list[str] | None = None, repositories: dict[str, Path] | None = None
) -> tuple[list[Any], tuple[str, ...], tuple[Any, ...], str]:
    """Diagnostics of one file, its warnings, its unsupported notices and what it is ("pipeline" or
    "<kind> template").

    ``template`` True: checked as a template; False: as a pipeline (loaded, then compiled with the
    defaults when every parameter has one: the notices are then those of the expanded pipeline); None:
    as a pipeline, and when that fails and the file has only the sections of a template (parameters,
    steps, jobs, stages, variables), as a template.
    """
    from mlyard.pipelines import PipelineError
    from mlyard.pipelines.parser import read_source
    from mlyard.pipelines.template_check import check_template, looks_like_template

    if not template:
        diagnostics, warnings, unsupported = _check_pipeline(file, var, repositories or {})
        if template is False or not diagnostics:
            return diagnostics, warnings, unsupported, "pipeline"
        try:
            if not looks_like_template(read_source(file).tree):
                return diagnostics, warnings, unsupported, "pipeline"
        except PipelineError:
            return diagnostics, warnings, unsupported, "pipeline"
    try:
        checked = check_template(file)
    except PipelineError as exc:
        return list(exc.diagnostics), (), (), "template"
    return [], checked.warnings, (), f"{checked.kind.removesuffix('s')} template"


def _check_pipeline(
    file: Path, var: list[str] | None, repositories: dict[str, Path]
) -> tuple[list[Any], tuple[str, ...], tuple[Any, ...]]:
    from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
    from mlyard.pipelines.resources import CONTAINER_ENGINE_NEEDED

    variables, context = _split_vars(var)
    containers: tuple[str, ...] = ()
    try:
        pipeline = load_pipeline(file)
        required = [parameter.name for parameter in pipeline.parameters if not parameter.has_default]
        if required:
            unsupported = pipeline.unsupported
        else:
            plan = compile_pipeline(pipeline, variables=variables, context=context, repositories=repositories)
            unsupported = plan.unsupported
            containers = tuple(
                f"job '{job.name}' runs in container '{job.container}': {CONTAINER_ENGINE_NEEDED}"
                for job in plan.jobs
                if job.container
            )
    except PipelineError as exc:
        return list(exc.diagnostics), (), ()
    if required:
        note = f"templates not expanded: parameters without a default ({', '.join(required)}); try `expand --param`"
        return [], (*pipeline.warnings, note), unsupported
    return [], (*pipeline.warnings, *containers), unsupported


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Pipeline files to check."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    var: list[str] = typer.Option(None, "--var", help=_VAR_HELP),
    template: bool | None = typer.Option(
        None, "--template/--pipeline",
        help="Check the files as step/job/stage/variable templates (or as pipelines); default: detected.",
    ),
    repo: list[str] = typer.Option(None, "--repo", help=_REPO_HELP),
) -> None:
    """Check pipeline (or template) files: every problem as file:line:col; exit 1 when any file is invalid.

    Valid Azure Pipelines that mlyard cannot run (a task it does not run) is listed as "unsupported"
    and does not make a file invalid: a run fails at that step."""
    from mlyard.pipelines import PipelineError

    problems: list[Any] = []
    report = []
    repositories = _repositories(repo)
    for file in files:
        diagnostics, warnings, unsupported, kind = _check(file, template, var, repositories)
        problems.extend(diagnostics)
        report.append(
            {"file": str(file), "kind": kind, "valid": not diagnostics, "errors": [_diagnostic(d) for d in diagnostics]}
            | {"unsupported": [_diagnostic(notice) for notice in unsupported], "warnings": list(warnings)}
        )
        if not as_json and not diagnostics:
            typer.echo(f"{file}: valid" + (f" ({kind})" if kind != "pipeline" else ""))
        for notice in unsupported if not as_json else ():
            typer.echo(f"unsupported: {notice}", err=True)
        for warning in warnings if not as_json else ():
            typer.echo(f"{file}: warning: {warning}", err=True)
    if as_json:
        print_json({"valid": not problems, "files": report})
        if problems:
            raise typer.Exit(1)
        return
    if problems:
        raise PipelineError(problems)


@app.command()
def expand(
    file: Path = typer.Argument(..., help="The pipeline file."),
    param: list[str] = typer.Option(None, "--param", "-p", help=_PARAM_HELP),
    var: list[str] = typer.Option(None, "--var", help=_VAR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
    repo: list[str] = typer.Option(None, "--repo", help=_REPO_HELP),
) -> None:
    """Print the compiled plan (templates and ${{ }} expressions expanded) as YAML."""
    import yaml

    from mlyard.pipelines import compile_pipeline, load_pipeline

    repositories = _repositories(repo)
    pipeline = load_pipeline(file)
    variables, context = _split_vars(var)
    plan = compile_pipeline(pipeline, _pairs(param, "--param"), variables, context, repositories=repositories)
    for notice in plan.unsupported:
        typer.echo(f"unsupported: {notice}", err=True)
    if as_json:
        print_json(plan.to_dict())
    else:
        sys.stdout.write(yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True, width=120))


@app.command("explain-trigger")
def explain_trigger(
    file: Path = typer.Argument(..., help="The pipeline file (as in the pushed commit)."),
    ref: str = typer.Option(..., "--ref", help="The pushed ref, e.g. refs/heads/main or refs/tags/v1."),
    changed: list[str] = typer.Option(None, "--changed", help="A changed path (repeatable)."),
    message: str = typer.Option("", "--message", "-m", help="The commit message."),
    as_json: bool = typer.Option(False, "--json", help='Print {"run": ..., "reason": ...}.'),
    schedule: bool = typer.Option(False, "--schedule", help="Explain the scheduled triggers (schedules:) instead."),
    at: str | None = typer.Option(None, "--at", help="With --schedule: the time to start from (ISO; default now)."),
    default_branch: str | None = typer.Option(
        None, "--default-branch", help="With --schedule: the default branch (for schedules without branches)."
    ),
) -> None:
    """Say whether a push would run the pipeline (`run` or `no run`) and why; exit 0 either way.

    Only the file's `trigger` section is read: problems elsewhere in the file do not matter here.
    With --schedule: whether each schedule of the file (as in the branch --ref) runs that branch, and when.
    """
    from mlyard.pipelines.parser import load_trigger
    from mlyard.pipelines.triggers import trigger_decision

    if schedule:
        _explain_schedules(file, ref, at, default_branch, as_json)
        return
    if at is not None or default_branch is not None:
        raise InvalidInput("--at and --default-branch explain schedules: add --schedule")
    decision = trigger_decision(load_trigger(file), ref, list(changed) if changed else None, message)
    if as_json:
        print_json({"run": decision.run, "reason": decision.reason})
    else:
        typer.echo(f"{'run' if decision.run else 'no run'}: {decision.reason}")


def _moment(text: str | None) -> Any:
    """--at as an aware UTC datetime (a time without a zone is UTC); now when absent."""
    from datetime import UTC, datetime

    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--at expects an ISO time such as 2026-11-30T03:00Z, got '{text}'") from None
    if not 1900 <= moment.year <= 9998:
        raise InvalidInput(f"--at expects a time between the years 1900 and 9998, got '{text}'")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _explain_schedules(file: Path, ref: str, at: str | None, default_branch: str | None, as_json: bool) -> None:
    """`explain-trigger --schedule`: only the schedules section has to be valid."""
    from datetime import timedelta

    from mlyard.pipelines import PipelineError
    from mlyard.pipelines.parser import read_source, schedules_of
    from mlyard.pipelines.schedules import describe_fires, schedule_decision
    from mlyard.pipelines.source import Reporter

    after = _moment(at) - timedelta(seconds=1)  # fires at or after --at
    document = read_source(file)
    reporter = Reporter(document.file)
    schedules = schedules_of(document.tree, reporter)
    if reporter.diagnostics:
        raise PipelineError(reporter.diagnostics)
    decisions = [
        schedule_decision(item, ref, after=after, default_branch=default_branch, count=3) for item in schedules or ()
    ]
    if as_json:
        print_json(
            {
                "run": any(d.run for d in decisions),
                "schedules": [
                    {
                        "display_name": d.schedule.display_name,
                        "cron": d.schedule.cron.text,
                        "always": d.schedule.always,
                        "batch": d.schedule.batch,
                        "run": d.run,
                        "reason": d.reason,
                        "next_fires": [t.isoformat().replace("+00:00", "Z") for t in d.next_fires] if d.run else [],
                    }
                    for d in decisions
                ],
            }
        )
        return
    if not decisions:
        typer.echo("no run: the pipeline has no schedules (no scheduled runs)")
    for d in decisions:
        cron = d.schedule.cron.text
        head = f"schedule '{d.schedule.display_name}' ({cron})" if d.schedule.display_name else f"schedule '{cron}'"
        if not d.run:
            typer.echo(f"{head}: no run: {d.reason}")
            continue
        when = "always" if d.schedule.always else "only if the branch changed since the last successful scheduled run"
        batch = d.schedule.batch and not d.schedule.always
        batch_note = "; not while the previous scheduled run is in progress" if batch else ""
        typer.echo(f"{head}: run: {d.reason}; next (UTC): {describe_fires(d.next_fires)} ({when}{batch_note})")


def _strip_wrapper(expression: str) -> str:
    text = expression.strip()
    for opening, closing in (("${{", "}}"), ("$[", "]")):
        if text.startswith(opening) and text.endswith(closing):
            return text[len(opening) : -len(closing)].strip()
    return text


def _param_value(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


@app.command("eval")
def eval_(
    expression: str = typer.Argument(..., help="An expression, bare or wrapped in ${{ }} or $[ ]."),
    var: list[str] = typer.Option(None, "--var", help="A variable KEY=VALUE (always a string)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="A parameter KEY=VALUE (JSON when it parses)."),
) -> None:
    """Evaluate one expression and print its value as JSON."""
    from mlyard.pipelines.expressions import ExpressionContext, evaluate

    parameters = {key: _param_value(value) for key, value in _pairs(param, "--param").items()}
    context = ExpressionContext(variables=_pairs(var, "--var"), parameters=parameters)
    value = evaluate(_strip_wrapper(expression), context)
    sys.stdout.write(json.dumps(value, default=str, ensure_ascii=False) + "\n")
