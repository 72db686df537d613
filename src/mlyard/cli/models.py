"""`mlyard models ...`: the registry of an environment (MLflow) with stages Staging and Production.

Through the server by default (`--env`); with `--tracking-uri` (or in a pipeline step with the
environment's service connection, `--tracking-uri "$MLFLOW_TRACKING_URI"`) directly against that
MLflow, with the same locks and history, as a step on Azure DevOps would reach Databricks' MLflow.
"""


import getpass
import os
import sys
from typing import Annotated, Any

import typer

from mlyard.cli import output
from mlyard.cli.context import client

models_app = typer.Typer(
    help="Registered models of an environment: list, show, stage, history, rollback.", no_args_is_help=True
)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ENV = Annotated[str, typer.Option("--env", help="Environment whose registry to use (through the server).")]
URI = Annotated[
    str | None, typer.Option("--tracking-uri", help="Use this MLflow directly instead of the server's environment.")
]


class _Server:
    """The registry of an environment, through the server's API."""

    def __init__(self, env: str) -> None:
        self.env = env
        self.api = client()

    def list_models(self) -> Any:
        return self.api.models.list(self.env)

    def show_model(self, name: str) -> Any:
        return self.api.models.get(name, self.env)

    def stage(self, name: str, version: str, stage: str, reason: str) -> Any:
        return self.api.models.stage(name, version, stage, env=self.env, reason=reason)

    def history(self, name: str) -> Any:
        return self.api.models.history(name, self.env)

    def rollback(self, name: str, reason: str) -> Any:
        return self.api.models.rollback(name, env=self.env, reason=reason)

    def version_for(self, name: str, version: str | None, stage: str | None) -> Any:
        return self.api.models.version(name, env=self.env, version=version, stage=stage)

    def tag(self, name: str, version: str, tags: dict[str, str]) -> Any:
        return self.api.models.tag(name, version, tags, env=self.env)


class _Direct:
    """An MLflow registry used directly (a pipeline step with the environment's connection)."""

    def __init__(self, uri: str) -> None:
        from mlyard.registry import Registry

        self.registry = Registry(uri)
        self.by = os.environ.get("BUILD_REQUESTEDFOR") or _user()

    def list_models(self) -> Any:
        return self.registry.list_models()

    def show_model(self, name: str) -> Any:
        return self.registry.show_model(name)

    def stage(self, name: str, version: str, stage: str, reason: str) -> Any:
        return self.registry.stage(name, version, stage, by=self.by, reason=reason or None)

    def history(self, name: str) -> Any:
        return self.registry.history(name)

    def rollback(self, name: str, reason: str) -> Any:
        return self.registry.rollback(name, by=self.by, reason=reason or None)

    def version_for(self, name: str, version: str | None, stage: str | None) -> Any:
        return self.registry.version_for(name, version=version, stage=stage)

    def tag(self, name: str, version: str, tags: dict[str, str]) -> Any:
        return self.registry.tag_version(name, version, tags)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _registry(env: str, uri: str | None) -> _Server | _Direct:
    return _Direct(uri) if uri else _Server(env)


@models_app.command("list")
def models_list(env: ENV = "dev", tracking_uri: URI = None, json: JSON = False) -> None:
    """Registered models with their Staging and Production versions."""
    rows = _registry(env, tracking_uri).list_models()
    if json:
        output.print_json(rows)
    else:
        columns = [
            ("name", "MODEL"),
            ("latest_version", "LATEST"),
            ("staging", "STAGING"),
            ("production", "PRODUCTION"),
            ("version_count", "VERSIONS"),
            ("updated", "UPDATED"),
        ]
        output.table(rows, columns, empty=f"no registered models in {tracking_uri or env}")


@models_app.command("show")
def models_show(name: str, env: ENV = "dev", tracking_uri: URI = None, json: JSON = False) -> None:
    """A model's versions: stage, aliases, tags, metrics, source run."""
    doc = _registry(env, tracking_uri).show_model(name)
    if json:
        output.print_json(doc)
        return
    print_model(doc, tracking_uri or env)


KEY_METRICS = ("accuracy", "f1", "roc_auc", "rmse", "mae", "r2", "precision", "recall")  # the template's
MAX_METRICS = 4  # metric columns of `models show` (all metrics: --json)
MAX_HISTORY = 10  # last stage changes of `models show` (all: `models history`)


def print_model(doc: dict[str, Any], registry: str) -> None:
    """A model for people, readable at 80 columns: a header block, the versions (stage, aliases, run,
    created), their key metrics side by side, then the last stage changes. --json has everything."""
    aliases: dict[str, Any] = doc.get("aliases") or {}
    stage_aliases = {"production", "staging"}
    output.fields([
        ("model", doc["name"]),
        ("registry", registry),
        ("production", _version(aliases.get("production"))),
        ("staging", _version(aliases.get("staging"))),
        ("aliases", {k: v for k, v in aliases.items() if k not in stage_aliases} or None),
        ("description", doc.get("description") or None),
        ("tags", doc.get("tags") or None),
        ("created", output.timestamp(doc.get("created"))),
    ])  # fmt: skip
    versions = sorted(doc.get("versions") or [], key=lambda v: int(v.get("version") or 0), reverse=True)
    other_aliases = any(set(v.get("aliases") or []) - stage_aliases for v in versions)
    rows = [
        {
            "version": v.get("version"),
            "stage": _stage(v.get("stage")),
            "aliases": [a for a in v.get("aliases") or [] if a not in stage_aliases],
            "run": (v.get("run_id") or "")[:8] or None,
            "created": v.get("created"),
        }
        for v in versions
    ]
    sys.stdout.write("\n")
    output.table(
        rows,
        [("version", "VERSION"), ("stage", "STAGE")]
        + ([("aliases", "ALIASES")] if other_aliases else [])
        + [("run", "RUN"), ("created", "CREATED")],
        title="versions",
        empty="no versions",
    )
    names = _key_metrics(versions)
    if names:
        sys.stdout.write("\n")
        metric_rows = [
            {"version": v.get("version"), **{n: (v.get("metrics") or {}).get(n) for n in names}} for v in versions
        ]
        output.table(metric_rows, [("version", "VERSION")] + [(n, n.upper()) for n in names], title="metrics")
    history = (doc.get("history") or [])[-MAX_HISTORY:]
    if history:  # lines, not a table: a reason is free text, on its own line
        lines = ["", output.styled("stage changes (newest first; all: `mlyard models history`)", "bold")]
        for h in reversed(history):
            lines.append(
                f"{output.timestamp(h.get('at'))}   version {h.get('version')}   "
                f"{_stage(h.get('from'))} -> {_stage(h.get('to'))}   by {h.get('by') or '-'}"
            )
            if h.get("reason"):
                lines.append(f"    {h['reason']}")
        sys.stdout.write("\n".join(lines) + "\n")


def _stage(stage: Any) -> str:
    """A stage for people: MLflow's "None" stage (no stage) is "-"."""
    return "-" if stage in (None, "", "None") else str(stage)


def _version(number: Any) -> str | None:
    return f"version {number}" if number is not None else None


def _key_metrics(versions: list[dict[str, Any]]) -> list[str]:
    """Up to MAX_METRICS metric names: the template's key metrics first, then the others by name."""
    found = {name for v in versions for name in (v.get("metrics") or {})}
    ordered = [n for n in KEY_METRICS if n in found] + sorted(found - set(KEY_METRICS))
    return ordered[:MAX_METRICS]


@models_app.command("version")
def models_version(
    name: str,
    stage: Annotated[str | None, typer.Option(help="Staging or Production (default Production).")] = None,
    version: Annotated[str | None, typer.Option(help="A version number.")] = None,
    env: ENV = "dev", tracking_uri: URI = None, json: JSON = False,
) -> None:  # fmt: skip
    """The version in a stage (or with a number): exit 3 with a clear message when there is none."""
    found = _registry(env, tracking_uri).version_for(name, version, stage)
    if json:
        output.print_json(found)
    else:
        print(found["version"])


@models_app.command("stage")
def models_stage(
    name: str, version: str,
    stage: Annotated[str, typer.Argument(help="Staging, Production, Archived or None.")],
    env: ENV = "dev", tracking_uri: URI = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the history).")] = "",
    json: JSON = False,
) -> None:  # fmt: skip
    """Move a model version to a stage (Production moves the previous one to Archived)."""
    entry = _registry(env, tracking_uri).stage(name, version, stage, reason)
    if json:
        output.print_json(entry)
    else:
        output.console().print(
            f"{name} version {entry.get('version', version)}: {_stage(entry.get('from'))} -> "
            f"{_stage(entry.get('to', stage))} in {tracking_uri or env}"
        )


@models_app.command("tag")
def models_tag(
    name: str, version: str,
    tag: Annotated[list[str], typer.Option("--tag", help="K=V (repeat).")],
    env: ENV = "dev", tracking_uri: URI = None, json: JSON = False,
) -> None:  # fmt: skip
    """Set tags on a model version (model CI records commit, branch, test status, run URL)."""
    from mlyard.cli.runs import pairs

    found = _registry(env, tracking_uri).tag(name, version, pairs(tag, "--tag"))
    if json:
        output.print_json(found)
    else:
        output.console().print(f"tagged {name} version {version}: {', '.join(tag)}")


@models_app.command("history")
def models_history(name: str, env: ENV = "dev", tracking_uri: URI = None, json: JSON = False) -> None:
    """Stage changes of a model, oldest first."""
    rows = _registry(env, tracking_uri).history(name)
    if json:
        output.print_json(rows)
    else:
        output.table(
            rows,
            [
                ("at", "AT"),
                ("version", "VERSION"),
                ("from", "FROM"),
                ("to", "TO"),
                ("by", "BY"),
                ("action", "ACTION"),
                ("reason", "REASON"),
            ],
            empty="no stage changes yet",
        )


@models_app.command("rollback")
def models_rollback(
    name: str, env: ENV = "dev", tracking_uri: URI = None, reason: str = "", json: JSON = False
) -> None:
    """Production goes back to the previous Production version."""
    entry = _registry(env, tracking_uri).rollback(name, reason)
    if json:
        output.print_json(entry)
    else:
        output.console().print(f"{name}: Production is version {entry.get('version')} again in {tracking_uri or env}")
