"""Retention of inference tables and labels: old hours and days go, recent ones stay, nothing else is touched."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlyard.monitoring.table import INFERENCE_DIR, LABELS_DIR, InferenceLogger, Label, prune, read_window, write_labels
from mlyard.services.monitoring import RETENTION_ENV, prune_tables, retention_days

BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).encode()
NOW = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)


def log_requests(folder: Path, *moments: datetime) -> None:
    """One request at each moment, each flushed as the scoring server's writer does (a file per flush)."""
    logger = InferenceLogger(folder / INFERENCE_DIR, "1", start=False)
    for i, moment in enumerate(moments):
        logger.offer(f"r{i}", moment.timestamp(), 1.0, 200, "application/json", BODY, b'{"predictions": [1]}')
        assert logger.flush() == 1


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_dir()}


def test_prune_removes_the_hours_and_label_days_before_the_cut_and_keeps_the_rest(tmp_path: Path) -> None:
    place = tmp_path / "deployments" / "m"
    cut = NOW - timedelta(days=2)  # 2026-06-08 12:30
    log_requests(place, cut - timedelta(days=3), cut - timedelta(hours=3), cut - timedelta(hours=1), cut,
                 NOW - timedelta(minutes=5))  # fmt: skip
    write_labels(place / LABELS_DIR, [Label("r0", 1)], now=cut - timedelta(days=2))
    write_labels(place / LABELS_DIR, [Label("r3", 0)], now=cut - timedelta(hours=1))  # the cut's day: kept
    strangers = [place / INFERENCE_DIR / "notes", place / INFERENCE_DIR / "2026-06-01" / "keep-me",
                 place / LABELS_DIR / "2026-13-01"]  # fmt: skip
    for folder in strangers:
        folder.mkdir(parents=True)

    assert prune(place, cut) == 3  # 06-05 09h, 06-08 09h (its next hour ended before the cut), 06-06 labels
    left = tree(place)
    gone = {"inference/2026-06-05", "inference/2026-06-05/09", "inference/2026-06-08/09", "labels/2026-06-06"}
    assert gone & left == set()
    # 11h holds requests up to 12:00, and a file of 11:59:59.9 may hold some of 12:00:00: kept until 13:00
    kept = {"inference/2026-06-08/11", "inference/2026-06-08/12", "inference/2026-06-10/12", "labels/2026-06-08"}
    assert kept <= left
    assert all(folder.is_dir() for folder in strangers)
    frame, _ = read_window(place / INFERENCE_DIR, cut - timedelta(days=4), NOW)
    assert sorted(set(frame["request_id"])) == ["r2", "r3", "r4"]
    assert prune(place, cut) == 0  # nothing more


def test_prune_stops_at_its_limit_oldest_first(tmp_path: Path) -> None:
    place = tmp_path / "m"
    log_requests(place, *(NOW - timedelta(days=10, hours=h) for h in range(5)))
    assert prune(place, NOW, limit=2) == 2
    assert sorted(p.name for p in (place / INFERENCE_DIR / "2026-05-31").iterdir()) == ["10", "11", "12"]
    assert prune(place, NOW) == 3 and not (place / INFERENCE_DIR / "2026-05-31").exists()


def test_prune_tables_walks_every_deployment_folder_and_zero_days_keeps_everything(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    for env, model in (("dev", "a"), ("dev", "b"), ("prod", "a")):
        log_requests(envs / env / "deployments" / model, NOW - timedelta(days=100), NOW - timedelta(days=1))
    (envs / "prod" / "mlflow.db").write_text("")  # an environment's other files are not deployments
    assert prune_tables(envs, 0, now=NOW) == 0
    assert prune_tables(envs, 90, now=NOW) == 3
    for env, model in (("dev", "a"), ("dev", "b"), ("prod", "a")):
        assert [p.name for p in (envs / env / "deployments" / model / INFERENCE_DIR).iterdir()] == ["2026-06-09"]


def test_the_retention_setting(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    assert retention_days() == 90
    for value, days in (("0", 0), (" 7 ", 7), ("36500", 36500)):
        monkeypatch.setenv(RETENTION_ENV, value)
        assert retention_days() == days
    with caplog.at_level(logging.WARNING, logger="mlyard.monitoring"):
        for value in ("-1", "1.5", "a week", "36501"):
            monkeypatch.setenv(RETENTION_ENV, value)
            assert retention_days() == 90
    assert caplog.text.count("MLYARD_INFERENCE_RETENTION_DAYS=") == 4 and "keeping 90 days" in caplog.text
