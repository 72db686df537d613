"""`mlyard deployments ...`: model CD to a serving target (the `local` scoring servers of the platform)."""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlyard.cli import output

if TYPE_CHECKING:
    from mlyard.client import Client

deployments_app = typer.Typer(
    help="Deployed models: create (deploy or redeploy), list, show, logs, monitor, delete.", no_args_is_help=True
)
JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ENV = Annotated[str, typer.Option("--env", help="Environment.")]
DEPLOY_TIMEOUT = 600.0  # starting a scoring server loads the model: allow for a slow machine


def _client(timeout: float = 60.0) -> "Client":
    from mlyard.cli.context import client

    return client(timeout)


@deployments_app.command("create")
def deployments_create(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    env: ENV = "dev",
    version: Annotated[str | None, typer.Option(help="Model version to deploy (else the one in --stage).")] = None,
    stage: Annotated[str, typer.Option(help="Staging or Production, when no --version is given.")] = "Production",
    target: Annotated[str, typer.Option(help="Serving target (local).")] = "local",
    cpu: Annotated[float, typer.Option(help="CPU cores.")] = 1,
    memory: Annotated[float, typer.Option(help="Memory in GB.")] = 2,
    json: JSON = False,
) -> None:
    """Deploy (or redeploy, without downtime) a model version; prints the scoring URI."""
    body = {"env": env, "model": model, "version": version or None, "stage": None if version else stage,
            "target": target, "cpu": cpu, "memory": memory}  # fmt: skip
    with _client(DEPLOY_TIMEOUT) as api:
        found = api.deployments.create(body)
    if json:
        output.print_json(found.to_dict())
    else:
        print(found.scoring_uri)


@deployments_app.command("list")
def deployments_list(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None, json: JSON = False
) -> None:
    """Deployments with their version, state and scoring URI."""
    with _client() as api:
        rows = [row.to_dict() for row in api.deployments.list(env=env)]
    if json:
        output.print_json(rows)
        return
    columns = [
        ("environment", "ENV"),
        ("model", "MODEL"),
        ("version", "VERSION"),
        ("target", "TARGET"),
        ("state", "STATE"),
        ("scoring_uri", "SCORING URI"),
        ("updated_at", "UPDATED"),
    ]
    output.table(rows, columns, empty="no deployments")


@deployments_app.command("show")
def deployments_show(model: str, env: ENV = "dev", json: JSON = False) -> None:
    """One deployment."""
    with _client() as api:
        found = api.deployments.get(env, model).to_dict()
    if json:
        output.print_json(found)
        return
    keys = ("model", "environment", "version", "model_uri", "target", "cpu", "memory", "state", "message",
            "scoring_uri", "pid", "log_path", "requested_by", "created_at", "updated_at")  # fmt: skip
    output.fields([(key, found.get(key)) for key in keys])


@deployments_app.command("logs")
def deployments_logs(model: str, env: ENV = "dev") -> None:
    """The scoring server's log."""
    with _client() as api:
        sys.stdout.write(api.deployments.logs(env, model))


@deployments_app.command("delete")
def deployments_delete(model: str, env: ENV = "dev", json: JSON = False) -> None:
    """Stop the scoring server and remove the deployment."""
    with _client() as api:
        found = api.deployments.delete(env, model)
    if json:
        output.print_json(found.to_dict())
    else:
        output.console().print(f"deleted deployment {model} in {env} ({found.scoring_uri} no longer answers)")


@deployments_app.command("monitor")
def deployments_monitor(
    model: str,
    env: ENV = "dev",
    window: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d (at most 90d).")] = "24h",
    json: JSON = False,
) -> None:
    """Drift of the inputs and predictions against the baseline, volume, latency, errors and (with labels) the
    model's metric over a window of the inference table (docs/monitoring.md)."""
    with _client(120.0) as api:
        report = api.deployments.monitor(env, model, window=window)
    if json:
        output.print_json(report.to_dict())
        return
    p50, p99 = report.latency_p50_ms, report.latency_p99_ms
    output.fields([
        ("deployment", f"{report.deployment} in {report.environment}"),
        ("window", f"{report.since} .. {report.until}"),
        ("versions", ", ".join(report.model_versions) or "-"),
        ("requests", f"{report.requests} ({report.rows} rows), errors {report.errors} ({report.error_rate:.1%})"),
        ("latency", f"p50 {_ms(p50)}, p99 {_ms(p99)}"),
        ("baseline", report.baseline or "none"),
        ("drifted", ", ".join(report.drifted) or "none"),
    ])  # fmt: skip
    rows: list[dict[str, Any]] = [
        {"feature": f.name, "kind": f.kind, "count": f.count, "psi": _num(f.psi), "test": f.test,
         "statistic": _num(f.statistic), "p": _num(f.p_value), "drift": "DRIFT" if f.drifted else "", "why": f.reason}
        for f in report.features + ([report.prediction_drift] if report.prediction_drift else [])
    ]  # fmt: skip
    if rows:
        columns = [("feature", "FEATURE"), ("kind", "KIND"), ("count", "N"), ("psi", "PSI"), ("test", "TEST"),
                   ("statistic", "STAT"), ("p", "P"), ("drift", "DRIFT"), ("why", "WHY")]  # fmt: skip
        output.table(rows, columns, empty="")
    if report.quality is not None:
        q = report.quality
        print(f"{q.metric} ({q.problem}) on {q.labelled} labelled rows: {q.value:.4f}")
        for point in q.by_hour:
            print(f"  {point.hour}  {q.metric} {point.value:.4f}  ({point.count} rows)")
    for note in report.notes:
        print(f"note: {note}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
