"""What the web UI shows of an environment's models: versions with their stage, aliases, metrics, parameters
and tags, their lineage (the run that trained a version, the pipeline runs that tested, promoted and deployed
it) and the promotion history, as frozen dataclasses.

Reading is fast: an environment with the embedded store (`sqlite:///.../mlflow.db`) is read with the standard
library's sqlite3, read-only, without importing MLflow (importing it and opening its store costs seconds of
CPU, which the first model page used to pay). The tables read are MLflow's registry and tracking tables of
the pinned MLflow version (pyproject: mlflow==3.17.2); tests/web/test_model_views.py checks that this reading
agrees with `mlyard.registry.Registry`. A remote MLflow server, or a store this reader does not recognise,
is read through the `Registry` (services.models). Writes (rollback, stage) always go through the `Registry`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlyard.db.engine import transaction
from mlyard.db.tables import AuditEntry
from mlyard.errors import NotFound
from mlyard.registry.store import never_used
from mlyard.services import deployments, environments, models
from mlyard.services.platform import Platform

HISTORY_TAG = "mlyard.history"  # = mlyard.registry.versions.HISTORY_TAG (that module imports MLflow)
_SQLITE = "sqlite:///"
_WORKSPACE = "default"  # MLflow's workspace column: one workspace per store
MAX_VERSIONS = 500  # versions shown of one model, newest first
MAX_MODELS = 1000
MAX_DEPLOY_EVENTS = 50
_BUILD_ID = re.compile(r"[?&]buildId=([0-9]{1,18})(?:&|$)")
_RUN_TAGS = ("mlyard.job_id", "mlyard.app", "mlyard.commit", "mlyard.environment", "mlflow.runName")


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int | None
    version_count: int
    production: int | None
    staging: int | None
    updated: str | None


@dataclass(frozen=True)
class TrainingRun:
    """The MLflow run that produced a version, and the workspace job that ran it (from its tags)."""

    run_id: str
    name: str
    status: str
    started: str | None
    job_id: str  # the mlyard workspace job (`mlyard jobs show ID`), "" when not run by one
    app: str
    commit: str


@dataclass(frozen=True)
class VersionView:
    name: str
    version: int
    stage: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    run_id: str
    source: str
    status: str
    description: str
    created: str | None
    training: TrainingRun | None

    @property
    def ci_run(self) -> int | None:
        """The pipeline run that tested (and promoted) this version: model CI tags it with its `run_url`."""
        return _run_id(self.tags.get("run_url", ""))

    @property
    def deploy_run(self) -> int | None:
        """The pipeline run that last deployed this version: model CD tags it with its `deploy_run_url`."""
        return _run_id(self.tags.get("deploy_run_url", ""))


def _run_id(url: str) -> int | None:
    found = _BUILD_ID.search(url)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class HistoryEntry:
    version: int | None
    from_stage: str
    to_stage: str
    by: str
    at: str
    action: str
    reason: str
    previous_production: int | None
    archived: int | None


@dataclass(frozen=True)
class DeployEvent:
    """A deployment of a version (the audit log's `deployment.deployed`)."""

    at: str
    actor: str
    version: str


@dataclass(frozen=True)
class ModelDetail:
    name: str
    environment: str
    description: str
    created: str | None
    aliases: dict[str, int]
    tags: dict[str, str]
    versions: tuple[VersionView, ...]  # newest first
    history: tuple[HistoryEntry, ...]  # newest first
    deploy_events: tuple[DeployEvent, ...] = ()
    deployment: dict[str, Any] | None = None
    read_with: str = "sqlite"  # "sqlite" (read directly) or "mlflow" (through the Registry)

    @property
    def production(self) -> int | None:
        return self.aliases.get("production")

    def version(self, number: int) -> VersionView:
        for found in self.versions:
            if found.version == number:
                return found
        known = ", ".join(str(v.version) for v in self.versions) or "none"
        raise NotFound(f"model {self.name!r} has no version {number} in {self.environment} (versions: {known})")

    def deploys_of(self, number: int) -> list[DeployEvent]:
        return [e for e in self.deploy_events if e.version == str(number)]

    def promotions_of(self, number: int) -> list[HistoryEntry]:
        return [e for e in self.history if e.version == number]


# -- reading ----------------------------------------------------------------------------------------
def list_models(platform: Platform, env: str) -> list[ModelSummary]:
    db = _embedded_db(platform, env)
    if db == _NO_STORE:
        return []
    if db is not None:
        with contextlib.suppress(_Unrecognised):
            return _sqlite_models_of(db)
    return [ModelSummary(name=m["name"], latest_version=m.get("latest_version"), version_count=m["version_count"],
                         production=m.get("production"), staging=m.get("staging"), updated=m.get("updated"))
            for m in models.list_models(platform, env)[:MAX_MODELS]]  # fmt: skip


def show_model(platform: Platform, env: str, name: str) -> ModelDetail:
    """A model with its versions (newest first), history and deployment lineage."""
    if not name or len(name) > 256:
        raise NotFound(f"model {name[:80]!r} not found in {env}")
    db = _embedded_db(platform, env)
    if db == _NO_STORE:
        raise NotFound(f"model {name!r} not found: the registry of {env} is empty")
    detail: ModelDetail | None = None
    if db is not None:
        with contextlib.suppress(_Unrecognised), _connect(db) as conn:
            detail = _sqlite_model(conn, env, name)
    if detail is None:
        detail = _registry_model(platform, env, name)
    deployment = next((d for d in deployments.list_deployments(platform, env=env) if d["model"] == name), None)
    return ModelDetail(**{**_fields(detail), "deploy_events": _deploy_events(platform, env, name),
                          "deployment": deployment})  # fmt: skip


def compare(detail: ModelDetail, a: int, b: int) -> list[tuple[str, str, Any, Any]]:
    """Rows (kind, key, value in a, value in b) of the metrics, then the parameters, then the tags of two versions."""
    left, right = detail.version(a), detail.version(b)
    rows: list[tuple[str, str, Any, Any]] = []
    for kind, one, two in (("metric", left.metrics, right.metrics), ("param", left.params, right.params),
                           ("tag", left.tags, right.tags)):  # fmt: skip
        for key in sorted(set(one) | set(two)):
            rows.append((kind, key, one.get(key), two.get(key)))
    return rows


def rollback_target(history: tuple[HistoryEntry, ...], current: int | None) -> int | None:
    """The version a rollback would put back in Production (mlyard.registry.promotion.rollback_target's rule)."""
    chain: list[int] = []
    for entry in reversed(history):  # oldest first
        if entry.version is None:
            continue
        if entry.to_stage == "Production":
            if entry.action == "rollback" and chain and chain[-1] == entry.previous_production:
                chain.pop()
            if not chain or chain[-1] != entry.version:
                chain.append(entry.version)
        elif entry.from_stage == "Production" and chain and chain[-1] == entry.version:
            chain.pop()
    if current is None or not chain or chain[-1] != current or len(chain) < 2:
        return None
    return chain[-2]


def check_version_number(text: str) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise NotFound(f"no model version {text[:20]!r}: versions are whole numbers from 1")
    return int(text)


# -- the embedded store, read directly --------------------------------------------------------------
class _Unrecognised(Exception):
    """The database is not the MLflow schema this reader knows: read through the Registry instead."""


_NO_STORE = Path("/nonexistent/mlflow.db")  # an embedded store not created yet: no models


def _embedded_db(platform: Platform, env: str) -> Path | None:
    """The database of an embedded store; _NO_STORE when it was never used (reading must not create it: MLflow's
    migrations take seconds, and creating it is the first writer's work); None for a remote store."""
    uri = environments.get_environment(platform, env)["mlflow_tracking_uri"]  # NotFound for an unknown env
    if not uri.startswith(_SQLITE):
        return None
    path = Path(uri[len(_SQLITE) :].split("?", 1)[0])
    if never_used(path):
        return _NO_STORE
    with contextlib.suppress(_Unrecognised), _connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "registered_models" not in tables:
            return _NO_STORE
    return path


@contextlib.contextmanager
def _connect(db: Path) -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise _Unrecognised from exc
    try:
        yield conn
    except sqlite3.Error as exc:  # a missing table or column: another schema
        raise _Unrecognised from exc
    finally:
        conn.close()


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _aliases(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = conn.execute("SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ?",
                        (_WORKSPACE, name))  # fmt: skip
    return {alias: int(version) for alias, version in rows}


def _stage_of(version: int, aliases: dict[str, int], legacy: str | None) -> str:
    for stage, alias in (("Production", "production"), ("Staging", "staging")):
        if aliases.get(alias) == version:
            return stage
    return "Archived" if legacy == "Archived" else "None"


def _sqlite_models_of(db: Path) -> list[ModelSummary]:
    with _connect(db) as conn:
        return _sqlite_models(conn)


def _sqlite_models(conn: sqlite3.Connection) -> list[ModelSummary]:
    counts = {name: (count, latest) for name, count, latest in conn.execute(
        "SELECT name, count(*), max(version) FROM model_versions WHERE workspace = ? GROUP BY name", (_WORKSPACE,))}
    found = []
    query = "SELECT name, last_updated_time FROM registered_models WHERE workspace = ? ORDER BY name LIMIT ?"
    for name, updated in conn.execute(query, (_WORKSPACE, MAX_MODELS)).fetchall():
        aliases = _aliases(conn, name)
        count, latest = counts.get(name, (0, None))
        found.append(ModelSummary(name=name, latest_version=latest, version_count=count,
                                  production=aliases.get("production"), staging=aliases.get("staging"),
                                  updated=_iso(updated)))  # fmt: skip
    return found


def _sqlite_model(conn: sqlite3.Connection, env: str, name: str) -> ModelDetail:
    row = conn.execute("SELECT name, creation_time, description FROM registered_models "
                       "WHERE workspace = ? AND name = ?", (_WORKSPACE, name)).fetchone()  # fmt: skip
    if row is None:
        raise NotFound(f"model {name!r} not found in the registry of {env}")
    aliases = _aliases(conn, name)
    tags = dict(conn.execute("SELECT key, value FROM registered_model_tags WHERE workspace = ? AND name = ?",
                             (_WORKSPACE, name)).fetchall())  # fmt: skip
    history = _history(tags.pop(HISTORY_TAG, "[]"))
    version_rows = conn.execute(
        "SELECT version, current_stage, source, run_id, status, description, creation_time FROM model_versions "
        "WHERE workspace = ? AND name = ? ORDER BY version DESC LIMIT ?", (_WORKSPACE, name, MAX_VERSIONS)).fetchall()
    version_tags: dict[int, dict[str, str]] = {}
    for version, key, value in conn.execute(
        "SELECT version, key, value FROM model_version_tags WHERE workspace = ? AND name = ?", (_WORKSPACE, name)
    ):
        version_tags.setdefault(int(version), {})[key] = value or ""
    run_ids = sorted({r[3] for r in version_rows if r[3]})
    metrics, params, run_tags, run_info = _runs(conn, run_ids)
    versions = []
    for version, legacy, source, run_id, status, description, created in version_rows:
        number = int(version)
        training = None
        if run_id and run_id in run_info:
            info, rtags = run_info[run_id], run_tags.get(run_id, {})
            training = TrainingRun(run_id=run_id, name=info[0] or rtags.get("mlflow.runName", ""), status=info[1] or "",
                                   started=_iso(info[2]), job_id=rtags.get("mlyard.job_id", ""),
                                   app=rtags.get("mlyard.app", ""), commit=rtags.get("mlyard.commit", ""))  # fmt: skip
        versions.append(VersionView(
            name=name, version=number, stage=_stage_of(number, aliases, legacy),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)), tags=version_tags.get(number, {}),
            metrics=metrics.get(run_id or "", {}), params=params.get(run_id or "", {}), run_id=run_id or "",
            source=source or "", status=status or "", description=description or "", created=_iso(created),
            training=training))  # fmt: skip
    return ModelDetail(name=name, environment=env, description=row[2] or "", created=_iso(row[1]), aliases=aliases,
                       tags=tags, versions=tuple(versions), history=history)  # fmt: skip


_RunData = tuple[dict[str, dict[str, float]], dict[str, dict[str, str]], dict[str, dict[str, str]],
                 dict[str, tuple[Any, ...]]]


def _runs(conn: sqlite3.Connection, run_ids: list[str]) -> _RunData:
    """Latest metrics, parameters, lineage tags and (name, status, start) of runs."""
    metrics: dict[str, dict[str, float]] = {}
    params: dict[str, dict[str, str]] = {}
    tags: dict[str, dict[str, str]] = {}
    info: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(run_ids), 500):  # SQLite's bound on host parameters
        chunk = run_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for key, value, is_nan, run in conn.execute(
            f"SELECT key, value, is_nan, run_uuid FROM latest_metrics WHERE run_uuid IN ({marks})", chunk
        ):
            metrics.setdefault(run, {})[key] = math.nan if is_nan else float(value)
        for key, value, run in conn.execute(f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})",
                                            chunk):  # fmt: skip
            params.setdefault(run, {})[key] = value
        for key, value, run in conn.execute(f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})",
                                            chunk):  # fmt: skip
            if key in _RUN_TAGS:
                tags.setdefault(run, {})[key] = value or ""
        for run, name, status, started in conn.execute(
            f"SELECT run_uuid, name, status, start_time FROM runs WHERE run_uuid IN ({marks})", chunk
        ):
            info[run] = (name, status, started)
    return metrics, params, tags, info


def _history(text: str) -> tuple[HistoryEntry, ...]:
    try:
        entries = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(entries, list):
        return ()
    return tuple(reversed([_entry(e) for e in entries if isinstance(e, dict)]))


def _entry(raw: dict[str, Any]) -> HistoryEntry:
    def number(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return HistoryEntry(version=number(raw.get("version")), from_stage=str(raw.get("from") or ""),
                        to_stage=str(raw.get("to") or ""), by=str(raw.get("by") or ""), at=str(raw.get("at") or ""),
                        action=str(raw.get("action") or ""), reason=str(raw.get("reason") or ""),
                        previous_production=number(raw.get("previous_production")),
                        archived=number(raw.get("archived")))  # fmt: skip


# -- a remote store: through the Registry -----------------------------------------------------------
def _registry_model(platform: Platform, env: str, name: str) -> ModelDetail:
    doc = models.show_model(platform, env, name)
    history = tuple(reversed([_entry(e) for e in doc.get("history", []) if isinstance(e, dict)]))
    versions = tuple(
        VersionView(name=name, version=int(v["version"]), stage=v["stage"], aliases=tuple(v.get("aliases", ())),
                    tags=dict(v.get("tags") or {}), metrics=dict(v.get("metrics") or {}), params={},
                    run_id=v.get("run_id") or "", source=v.get("source") or "", status=v.get("status") or "",
                    description=v.get("description") or "", created=v.get("created"), training=None)
        for v in sorted(doc.get("versions", []), key=lambda v: -int(v["version"]))[:MAX_VERSIONS]
    )  # fmt: skip
    return ModelDetail(name=doc["name"], environment=env, description=doc.get("description", ""),
                       created=doc.get("created"), aliases=dict(doc.get("aliases") or {}),
                       tags=dict(doc.get("tags") or {}), versions=versions, history=history,
                       read_with="mlflow")  # fmt: skip


def _fields(detail: ModelDetail) -> dict[str, Any]:
    return {f.name: getattr(detail, f.name) for f in fields(detail)}


def _deploy_events(platform: Platform, env: str, name: str) -> tuple[DeployEvent, ...]:
    with transaction(platform.sessions) as session:
        query = (select(AuditEntry).where(AuditEntry.action == "deployment.deployed",
                                          AuditEntry.target == f"{env}/{name}")
                 .order_by(AuditEntry.id.desc()).limit(MAX_DEPLOY_EVENTS))  # fmt: skip
        return tuple(DeployEvent(at=e.at.isoformat(timespec="seconds"), actor=e.actor,
                                 version=str((e.detail or {}).get("version", "")))
                     for e in session.scalars(query))  # fmt: skip



def reads_directly(platform: Platform, env: str) -> bool:
    """True when `env`'s registry is read here in milliseconds (the embedded store); False for a remote one."""
    return _embedded_db(platform, env) is not None


# -- deployments: health and recent traffic ---------------------------------------------------------
HEALTH_TIMEOUT = 2.0


@dataclass(frozen=True)
class Health:
    ok: bool
    status: str  # "ok", or what went wrong
    model_uri: str
    counters: dict[str, Any]  # the inference log's counters (seen, written, dropped_*...), {} when it does not log


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (its CA bundle), made once: `httpx.get` makes one per call (~40 ms of CPU)."""
    import httpx

    return httpx.create_ssl_context()


def health(deployment: dict[str, Any]) -> Health:
    """Ask the scoring server's /health (through its front port), with a short timeout."""
    import httpx

    url = f"{deployment['url']}/health"
    try:
        answer = httpx.get(url, timeout=HEALTH_TIMEOUT, verify=_tls())
        doc = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    except (httpx.HTTPError, ValueError) as exc:
        return Health(ok=False, status=f"no answer from {url}: {type(exc).__name__}", model_uri="", counters={})
    if answer.status_code != 200 or not isinstance(doc, dict):
        return Health(ok=False, status=f"{url} answered {answer.status_code}", model_uri="", counters={})
    counters = doc.get("inference_log")
    return Health(ok=doc.get("status") == "ok", status=str(doc.get("status", "")),
                  model_uri=str(doc.get("model_uri", "")), counters=counters if isinstance(counters, dict) else {})


def traffic(platform: Platform, env: str, name: str, window: str = "1h") -> Any:
    """Requests, errors and latency of the deployment's inference table over `window` (mlyard.monitoring's
    report without a baseline: no drift, no MLflow)."""
    from mlyard.monitoring.report import build_report
    from mlyard.monitoring.table import INFERENCE_DIR, read_window
    from mlyard.services import monitoring

    span = monitoring.parse_window(window)
    until = datetime.now(UTC)
    since = until - span
    frame, truncated = read_window(deployments.deployment_folder(platform, env, name) / INFERENCE_DIR, since, until)
    return build_report(deployment=name, environment=env, frame=frame, labels=None, profile=None, baseline="",
                        since=since, until=until, truncated=truncated)  # fmt: skip
