"""Monitoring of deployments: ground-truth labels posted by request id, and the drift and quality report of a
window of a deployment's inference table against its model version's baseline profile (docs/monitoring.md)."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlyard.errors import InvalidInput, NotFound
from mlyard.monitoring.profile import PROFILE_ARTIFACT, Profile, load_profile, local_artifacts, read_profile_file
from mlyard.monitoring.report import MonitorReport, build_report
from mlyard.monitoring.table import (
    INFERENCE_DIR,
    LABELS_DIR,
    MAX_LABELS,
    MAX_PRUNED,
    RETENTION_DAYS,
    Label,
    prune,
    read_labels,
    read_window,
    write_labels,
)
from mlyard.names import check_env_name, check_repo_name
from mlyard.services import deployments, environments, models
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

log = logging.getLogger("mlyard.monitoring")

_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=90)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_LABEL_TEXT = 200
RETENTION_ENV = "MLYARD_INFERENCE_RETENTION_DAYS"  # the server's environment: days kept (0 = everything)
RETENTION_SECONDS = 3600.0  # between two passes of `keep_retention` (the first at the server's start)
MAX_RETENTION_DAYS = 36_500
MAX_DEPLOYMENT_FOLDERS = 10_000  # a pass looks at the tables of that many deployments at most


@dataclass(frozen=True)
class LabelsPosted:
    deployment: str
    environment: str
    accepted: int


def parse_window(text: str) -> timedelta:
    """`30m`, `24h`, `7d` as a duration (1 minute to 90 days)."""
    found = _WINDOW.match(text.strip())
    if not found:
        raise InvalidInput(f"invalid window {text!r}: give minutes, hours or days, e.g. 30m, 24h or 7d")
    window = timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
    if window > MAX_WINDOW:
        raise InvalidInput(f"window {text!r} is longer than {MAX_WINDOW.days} days: ask for a shorter one")
    return window


def monitor(
    platform: Platform, env: str, name: str, *, window: str = "24h", now: datetime | None = None
) -> MonitorReport:
    check_env_name(env)
    check_repo_name(name)
    span = parse_window(window)
    found = deployments.show(platform, env, name)  # NotFound says what to do
    until = now or datetime.now(UTC)
    since = until - span
    place = deployments.deployment_folder(platform, env, name)
    frame, truncated = read_window(place / INFERENCE_DIR, since, until)
    labels, labels_truncated = read_labels(place / LABELS_DIR, since)
    version = str(found["version"])
    run_id = models.version_for(platform, env, found["model"], version=version).get("run_id")
    profile = baseline_profile(platform, env, run_id) if run_id else None
    baseline = f"model version {version}: run {run_id}, artifact {PROFILE_ARTIFACT}"
    return build_report(deployment=name, environment=env, frame=frame, labels=labels, profile=profile,
                        baseline=baseline, since=since, until=until, truncated=truncated,
                        labels_truncated=labels_truncated)  # fmt: skip


def baseline_profile(platform: Platform, env: str, run_id: str) -> Profile | None:
    """The baseline profile logged with run `run_id` of environment `env`, or None when it has none. A run of an
    environment with the embedded store keeps its artifacts in the environment's folder, whether it was logged
    through the environment's MLflow server (the generated project's training: `mlflow-artifacts:/...`) or
    straight to the store (`file:///...`): its location comes from the registry's client (through the server, the
    REST client of the environment's MLflow server: the server imports no MLflow) and the file is read from there.
    Other runs' profiles are downloaded with MLflow's client."""
    tracking_uri = environments.get_environment(platform, env)["mlflow_tracking_uri"]
    destination = deployments.artifacts_destination(tracking_uri)
    if destination is not None:
        try:
            location = models.registry(platform, env).run_artifact_uri(run_id)
        except NotFound:
            return None
        folder = local_artifacts(destination, location)
        if folder is not None:
            return read_profile_file(folder)
    return load_profile(tracking_uri, run_id, artifacts_destination=destination)


def post_labels(platform: Platform, principal: Principal, env: str, name: str, items: list[Any]) -> LabelsPosted:
    """Store ground truth for served requests: items of {"request_id", "label", "row" (default 0)}."""
    principal.require("pipelines:run")
    check_env_name(env)
    check_repo_name(name)
    deployments.show(platform, env, name)
    if not items or len(items) > MAX_LABELS:
        raise InvalidInput(f"{len(items)} labels: post 1 to {MAX_LABELS} at a time")
    labels = []
    for index, item in enumerate(items):
        where = f"labels[{index}]"
        if not isinstance(item, dict) or not _REQUEST_ID.match(str(item.get("request_id", ""))):
            raise InvalidInput(f"{where}: request_id must be the X-Request-Id of a scoring answer (1-64 characters "
                               "of letters, digits and ._:-)")  # fmt: skip
        label, row = item.get("label"), item.get("row", 0)
        if label is None or not isinstance(label, (str, int, float, bool)) or len(str(label)) > MAX_LABEL_TEXT:
            raise InvalidInput(f"{where}: label must be a number, a boolean or a string of at most "
                               f"{MAX_LABEL_TEXT} characters")  # fmt: skip
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < 10_000:
            raise InvalidInput(f"{where}: row must be the row's index in its request (0 to 9999)")
        labels.append(Label(request_id=str(item["request_id"]), label=label, row=row))
    accepted = write_labels(deployments.deployment_folder(platform, env, name) / LABELS_DIR, labels)
    return LabelsPosted(deployment=name, environment=env, accepted=accepted)


def retention_days() -> int:
    """MLYARD_INFERENCE_RETENTION_DAYS of the server: how many days of inference tables and labels are kept
    (default RETENTION_DAYS, the longest window a report reads; 0 keeps everything). A value that is not a whole
    number of days up to MAX_RETENTION_DAYS is warned about and the default used."""
    value = os.environ.get(RETENTION_ENV, "").strip()
    if not value:
        return RETENTION_DAYS
    if not value.isdigit() or int(value) > MAX_RETENTION_DAYS:
        log.warning("%s=%r is not a number of days from 0 to %d: keeping %d days", RETENTION_ENV, value,
                    MAX_RETENTION_DAYS, RETENTION_DAYS)  # fmt: skip
        return RETENTION_DAYS
    return int(value)


def prune_tables(envs_dir: Path, days: int, now: datetime | None = None) -> int:
    """Remove the inference-table hours and label days older than `days` days from the tables of every deployment
    folder on disk (`<envs>/<env>/deployments/<model>`, deleted deployments' too); returns how many folders went.
    Bounded: MAX_DEPLOYMENT_FOLDERS deployments, MAX_PRUNED folders (the next pass goes on)."""
    if days <= 0:
        return 0
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    removed, seen = 0, 0
    try:
        environments_on_disk = sorted(envs_dir.iterdir())
    except OSError:
        return 0
    for env_dir in environments_on_disk:
        tables = env_dir / deployments.FOLDER
        try:
            places = [] if tables.is_symlink() else sorted(tables.iterdir())
        except OSError:
            continue
        for place in places:
            seen += 1
            if seen > MAX_DEPLOYMENT_FOLDERS or removed >= MAX_PRUNED:
                return removed
            if place.is_dir() and not place.is_symlink():
                removed += prune(place, before, MAX_PRUNED - removed)
    return removed


def keep_retention(platform: Platform, stop: threading.Event, *, interval: float = RETENTION_SECONDS) -> None:
    """The server's retention of inference tables: a pass at start, then one every `interval` seconds, until
    `stop` is set (docs/monitoring.md, "Retention")."""
    days = retention_days()
    while True:
        try:
            removed = prune_tables(platform.settings.envs_dir, days)
            if removed:
                log.info("inference tables: removed %d hour or day folder(s) older than %d days", removed, days)
        except Exception:  # the loop must outlive any one table's trouble
            log.exception("the inference tables' retention pass failed")
        if days <= 0 or stop.wait(interval):
            return
