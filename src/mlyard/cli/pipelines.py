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


def _diagnostic(d: Any) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "column": d.column, "path": d.path, "message": d.message}


def _check(file: Path, repositories: dict[str, Path]) -> tuple[list[Any], tuple[str, ...]]:
    """Diagnostics of one file (loading, then compiling with defaults when every parameter has one)."""
    from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
    from mlyard.pipelines.resources import CONTAINER_ENGINE_NEEDED

    containers: tuple[str, ...] = ()
    try:
        pipeline = load_pipeline(file)
        required = [parameter.name for parameter in pipeline.parameters if not parameter.has_default]
        if not required:
            plan = compile_pipeline(pipeline, repositories=repositories)
            containers = tuple(
                f"job '{job.name}' runs in container '{job.container}': {CONTAINER_ENGINE_NEEDED}"
                for job in plan.jobs
                if job.container
            )
    except PipelineError as exc:
        return list(exc.diagnostics), ()
    if required:
        note = f"templates not expanded: parameters without a default ({', '.join(required)}); try `expand --param`"
        return [], (*pipeline.warnings, note)
    return [], (*pipeline.warnings, *containers)


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Pipeline files to check."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    repo: list[str] = typer.Option(None, "--repo", help=_REPO_HELP),
) -> None:
    """Check pipeline files: every problem as file:line:col; exit 1 when any file is invalid."""
    from mlyard.pipelines import PipelineError

    problems: list[Any] = []
    report = []
    repositories = _repositories(repo)
    for file in files:
        diagnostics, warnings = _check(file, repositories)
        problems.extend(diagnostics)
        report.append(
            {"file": str(file), "valid": not diagnostics, "errors": [_diagnostic(d) for d in diagnostics]}
            | {"warnings": list(warnings)}
        )
        if not as_json and not diagnostics:
            typer.echo(f"{file}: valid")
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
    var: list[str] = typer.Option(None, "--var", help="A queue-time variable KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
    repo: list[str] = typer.Option(None, "--repo", help=_REPO_HELP),
) -> None:
    """Print the compiled plan (templates and ${{ }} expressions expanded) as YAML."""
    import yaml

    from mlyard.pipelines import compile_pipeline, load_pipeline

    repositories = _repositories(repo)
    pipeline = load_pipeline(file)
    plan = compile_pipeline(pipeline, _pairs(param, "--param"), _pairs(var, "--var"), repositories=repositories)
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
) -> None:
    """Say whether a push would run the pipeline (`run` or `no run`) and why; exit 0 either way."""
    from mlyard.pipelines import load_pipeline, trigger_decision

    decision = trigger_decision(load_pipeline(file), ref, list(changed) if changed else None, message)
    if as_json:
        print_json({"run": decision.run, "reason": decision.reason})
    else:
        typer.echo(f"{'run' if decision.run else 'no run'}: {decision.reason}")


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
