"""The inference table's writer: bounded, sampled, and a write error drops log lines, never raises."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlyard.monitoring import table
from mlyard.monitoring.report import build_report
from mlyard.monitoring.table import (
    InferenceLogger,
    Label,
    parse_inputs,
    parse_predictions,
    read_labels,
    read_window,
    write_labels,
)

BODY = json.dumps({"dataframe_split": {"columns": ["x", "y"], "data": [[1.0, 2.0], [3.0, 4.0]]}}).encode()
REPLY = b'{"predictions": [0, 1]}'
WHEN = datetime(2026, 3, 4, 5, 6, tzinfo=UTC).timestamp()


def offer(logger: InferenceLogger, n: int, when: float = WHEN) -> None:
    for i in range(n):
        logger.offer(f"id{i}", when, 1.5, 200, "application/json", BODY, REPLY)


def test_rows_are_written_with_inputs_and_predictions(tmp_path: Path) -> None:
    logger = InferenceLogger(tmp_path, "7", start=False)
    offer(logger, 3)
    assert logger.flush() == 3
    frame, truncated = read_window(tmp_path, datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    assert (len(frame), truncated, set(frame["model_version"])) == (6, False, {"7"})
    first = frame[(frame["request_id"] == "id0")].sort_values("row")
    assert list(first["inputs"]) == [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}]
    assert list(first["prediction"]) == [0, 1]
    assert [p.name for p in tmp_path.rglob("*.parquet")] and not list(tmp_path.rglob("*.tmp"))


def test_a_write_error_drops_and_counts_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the table's folder should be")
    logger = InferenceLogger(blocker / "inference", "1", start=False)
    offer(logger, 4)
    assert logger.flush() == 0
    counters = logger.counters()
    assert (counters.dropped_error, counters.write_errors, counters.written, counters.queued) == (4, 1, 0, 0)
    assert counters.last_error.startswith(("FileExistsError", "NotADirectoryError"))
    offer(logger, 1)  # the logger goes on after an error
    assert logger.flush() == 0 and logger.counters().dropped_error == 5


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    logger = InferenceLogger(tmp_path, "1", queue_limit=3, start=False)
    offer(logger, 5)
    counters = logger.counters()
    assert (counters.seen, counters.queued, counters.dropped_full) == (5, 3, 2)


def test_sampling_past_the_volume_logged_in_full(tmp_path: Path) -> None:
    logger = InferenceLogger(tmp_path, "1", full_below=2, sample_rate=0.0, start=False)
    offer(logger, 5)
    offer(logger, 2, when=WHEN + 1)  # a new second: in full again
    counters = logger.counters()
    assert (counters.queued, counters.sampled_out) == (4, 3)


def test_the_thread_writes_in_the_background_and_close_flushes(tmp_path: Path) -> None:
    logger = InferenceLogger(tmp_path, "1", flush_seconds=0.05)
    offer(logger, 2, when=time.time())
    deadline = time.monotonic() + 10
    while logger.counters().written < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    offer(logger, 1, when=time.time())
    logger.close()
    assert logger.counters().written == 3
    now = datetime.now(UTC)
    assert len(read_window(tmp_path, now - timedelta(hours=1), now + timedelta(minutes=1))[0]) == 6


def test_parse_request_formats() -> None:
    assert parse_inputs(b'{"dataframe_records": [{"x": 1}, {"x": 2}]}', "application/json") == [{"x": 1}, {"x": 2}]
    assert parse_inputs(b'{"inputs": {"x": [1, 2]}}', "application/json") == [{"x": 1}, {"x": 2}]
    assert parse_inputs(b'{"instances": [[1, 2]]}', "application/json") == [{"0": 1, "1": 2}]
    assert parse_inputs(b"x,y\n1,2\n", "text/csv") == [{"x": 1, "y": 2}]
    assert parse_inputs(b"{", "application/json") is None
    assert parse_predictions(b'{"predictions": {"a": [1, 2]}}') == [{"a": 1}, {"a": 2}]
    assert parse_predictions(b"[3]") == [3]


def test_labels_are_read_from_the_windows_first_day_on_and_a_cut_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = datetime(2026, 3, 10, 8, tzinfo=UTC)
    for i, days_before in enumerate((3, 1, 0, 0)):
        write_labels(tmp_path, [Label(f"r{i}", i)], now=day - timedelta(days=days_before))
    frame, cut = read_labels(tmp_path, since=day - timedelta(days=1, hours=-12))  # 03-09 20:00: that whole day
    assert (sorted(frame["request_id"]), cut) == (["r1", "r2", "r3"], False)
    assert sorted(read_labels(tmp_path)[0]["request_id"]) == ["r0", "r1", "r2", "r3"]
    monkeypatch.setattr(table, "MAX_LABEL_FILES", 2)
    frame, cut = read_labels(tmp_path, since=day - timedelta(days=1))
    assert (len(frame), cut) == (2, True) and "r1" not in set(frame["request_id"])
    report = build_report(deployment="m", environment="dev", frame=read_window(tmp_path, day, day)[0], labels=frame,
                          profile=None, baseline="", since=day, until=day, labels_truncated=cut)  # fmt: skip
    assert any(note.startswith("more labels were posted since the window began") for note in report.notes)
