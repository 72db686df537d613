"""A deployment's inference table: append-only Parquet files by hour, and the ground-truth labels next to it.

Layout (under `<envs dir>/<env>/deployments/<model>/`):
  inference/YYYY-MM-DD/HH/part-<pid>-<ms>-<seq>.parquet   one file per flush (UTC hour of its first request)
  labels/YYYY-MM-DD/part-<time>-<random>.parquet          one file per `POST .../labels`

A row of the inference table is one request, stored as served: request_id, timestamp (UTC), model_version,
latency_ms, status, content_type, request (the body's bytes, null when larger than MAX_LOGGED_BODY) and
response (the answer's bytes). Decoding happens when the table is read (`read_window`), not in the scoring
server: a report expands each request into its input rows (`inputs` {column: value}, `prediction`).

`InferenceLogger` is the scoring server's writer: the request path only appends a tuple to a bounded deque
(no lock, no parsing, no disk); a background thread writes every FLUSH_SECONDS. A full queue or a failed write
drops the records and counts them (the scoring server's /health shows the counters): logging never fails a
request nor slows it beyond the append.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shutil
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("mlyard.monitoring")

INFERENCE_DIR, LABELS_DIR = "inference", "labels"
QUEUE_LIMIT = 10_000  # requests waiting for the writer; more are dropped (counted)
FLUSH_SECONDS = 1.0
MAX_LOGGED_BODY = 1024 * 1024  # larger request bodies are logged without their inputs
MAX_ROWS_PER_REQUEST = 10_000  # rows of one request logged; the rest are left out
MAX_WINDOW_ROWS = 1_000_000  # requests (and input rows) a report reads at most (newest hours first)
MAX_LABELS = 10_000  # labels per POST
MAX_LABEL_FILES = 10_000
DEFAULT_SAMPLE_RATE = 0.1  # share of requests logged above the volume below
DEFAULT_FULL_BELOW = 50  # requests per second logged in full (every one) before sampling starts
RETENTION_DAYS = 90  # the default: the longest window a report reads (services.monitoring.MAX_WINDOW)
MAX_PRUNED = 10_000  # hour and day folders one `prune` removes at most (the next one goes on)
_DAY, _HOUR = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), re.compile(r"^[0-9]{2}$")
COLUMNS = ("request_id", "row", "timestamp", "model_version", "latency_ms", "status", "inputs", "prediction")


@dataclass(frozen=True)
class LogCounters:
    """What the logger did since the scoring server started."""

    seen: int  # /invocations answered
    sampled_out: int  # left out by sampling
    queued: int
    written: int  # requests written
    dropped_full: int  # dropped: the queue was full
    dropped_error: int  # dropped: the write failed
    write_errors: int
    last_error: str


class InferenceLogger:
    """Logs requests into the inference table at `folder` (the deployment's `inference/` folder)."""

    def __init__(
        self, folder: Path, model_version: str, *, sample_rate: float = DEFAULT_SAMPLE_RATE,
        full_below: int = DEFAULT_FULL_BELOW, queue_limit: int = QUEUE_LIMIT, flush_seconds: float = FLUSH_SECONDS,
        start: bool = True,
    ) -> None:  # fmt: skip
        if not 0 <= sample_rate <= 1 or full_below < 0 or queue_limit < 1:
            raise ValueError(f"invalid logging: sample_rate {sample_rate} (0..1), full_below {full_below} (>= 0)")
        self.folder = Path(folder)
        self.model_version = model_version
        self.sample_rate, self.full_below, self.queue_limit = sample_rate, full_below, queue_limit
        self.flush_seconds = flush_seconds
        self._queue: deque[tuple[Any, ...]] = deque()
        self._second, self._in_second = 0, 0
        self.seen = self.sampled_out = self.written = self.dropped_full = self.dropped_error = 0
        self.write_errors, self.last_error = 0, ""
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlyard-inference-log", daemon=True)
        if start:
            self._thread.start()

    # -- the request path: constant work, no lock, no I/O ----------------------------------------
    def offer(
        self, request_id: str, when: float, latency_ms: float, status: int, content_type: str | None, body: bytes,
        reply: bytes,
    ) -> None:  # fmt: skip
        self.seen += 1
        second = int(when)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        if self._in_second > self.full_below and random.random() >= self.sample_rate:
            self.sampled_out += 1
            return
        if len(self._queue) >= self.queue_limit:
            self.dropped_full += 1
            return
        self._queue.append((request_id, when, latency_ms, status, content_type, body, reply))

    def counters(self) -> LogCounters:
        return LogCounters(
            seen=self.seen, sampled_out=self.sampled_out, queued=len(self._queue), written=self.written,
            dropped_full=self.dropped_full, dropped_error=self.dropped_error, write_errors=self.write_errors,
            last_error=self.last_error,
        )  # fmt: skip

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
        self.flush()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def flush(self) -> int:
        """Write what is queued as one Parquet file; returns the requests written (0 on error: dropped)."""
        batch: list[tuple[Any, ...]] = []
        while self._queue and len(batch) < self.queue_limit:
            batch.append(self._queue.popleft())
        if not batch:
            return 0
        try:
            self._write(batch)
        except Exception as exc:  # a full disk, a permission: drop the batch, never the server
            self.dropped_error += len(batch)
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("inference log: %d requests dropped: %s", len(batch), self.last_error)
            return 0
        self.written += len(batch)
        return len(batch)

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids, whens, latencies, statuses, types, bodies, replies = zip(*batch, strict=True)
        columns = [
            pa.array(ids, pa.string()),
            pa.array([int(w * 1_000_000) for w in whens], pa.timestamp("us", tz="UTC")),
            pa.array([self.model_version] * len(batch), pa.string()),
            pa.array(latencies, pa.float64()),
            pa.array(statuses, pa.int16()),
            pa.array(types, pa.string()),
            pa.array([b if len(b) <= MAX_LOGGED_BODY else None for b in bodies], pa.binary()),
            pa.array(replies, pa.binary()),
        ]
        moment = datetime.fromtimestamp(whens[0], UTC)
        folder = self.folder / moment.strftime("%Y-%m-%d") / moment.strftime("%H")
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        target = folder / f"part-{os.getpid()}-{int(whens[0] * 1000)}-{self._seq}.parquet"
        temporary = target.with_suffix(".tmp")
        pq.write_table(pa.Table.from_arrays(columns, schema=schema()), temporary, compression="snappy")
        os.replace(temporary, target)  # readers never see half a file


def schema() -> Any:
    """The inference table's Arrow schema (built lazily: pyarrow is imported by the writer thread only)."""
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")), ("model_version", pa.string()),
        ("latency_ms", pa.float64()), ("status", pa.int16()), ("content_type", pa.string()),
        ("request", pa.binary()), ("response", pa.binary()),
    ])  # fmt: skip


def expand(requests: Any) -> Any:
    """Requests of the table (a DataFrame) as their input rows: request_id, row, timestamp, model_version,
    latency_ms, status, inputs ({column: value} or None), prediction (None for a failed request)."""
    import pandas as pd

    out: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    total = 0
    for rec in requests.itertuples(index=False):
        body = rec.request
        inputs = parse_inputs(body, rec.content_type) if body is not None else None
        predictions = parse_predictions(rec.response) if rec.status == 200 and rec.response is not None else None
        count = min(max(len(inputs or ()), len(predictions or ()), 1), MAX_ROWS_PER_REQUEST)
        for index in range(count):
            out["request_id"].append(rec.request_id)
            out["row"].append(index)
            out["timestamp"].append(rec.timestamp)
            out["model_version"].append(rec.model_version)
            out["latency_ms"].append(rec.latency_ms)
            out["status"].append(rec.status)
            out["inputs"].append(inputs[index] if inputs and index < len(inputs) else None)
            out["prediction"].append(predictions[index] if predictions and index < len(predictions) else None)
        total += count
        if total >= MAX_WINDOW_ROWS:
            break
    frame = pd.DataFrame(out)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def parse_inputs(body: bytes, content_type: str | None) -> list[dict[str, Any]] | None:
    """The rows of an MLflow scoring request as {column: value} (None when it cannot be read)."""
    try:
        if content_type and content_type.startswith("text/csv"):
            import io

            import pandas as pd

            frame = pd.read_csv(io.BytesIO(body))
            return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]
        doc = json.loads(body)
    except Exception:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(split := doc.get("dataframe_split"), dict):
        columns, data = split.get("columns"), split.get("data")
        if isinstance(data, list):
            if not isinstance(columns, list):
                columns = [str(i) for i in range(len(data[0]) if data and isinstance(data[0], list) else 0)]
            return [dict(zip(columns, row, strict=False)) if isinstance(row, list) else {} for row in data]
        return None
    for key in ("dataframe_records", "instances", "inputs"):
        rows = doc.get(key)
        if isinstance(rows, list):
            return [r if isinstance(r, dict) else {str(i): v for i, v in enumerate(r if isinstance(r, list) else [r])}
                    for r in rows]  # fmt: skip
        if isinstance(rows, dict):  # columnar {"col": [values]}
            columns = list(rows)
            values = [v if isinstance(v, list) else [v] for v in rows.values()]
            return [dict(zip(columns, row, strict=False)) for row in zip(*values, strict=False)]
    return None


def parse_predictions(reply: bytes) -> list[Any] | None:
    try:
        doc = json.loads(reply)
    except ValueError:
        return None
    predictions = doc.get("predictions") if isinstance(doc, dict) else doc
    if isinstance(predictions, dict):  # columnar outputs
        columns = list(predictions)
        return [dict(zip(columns, row, strict=False)) for row in zip(*predictions.values(), strict=False)]
    return predictions if isinstance(predictions, list) else None


# -- readers (the report) ------------------------------------------------------------------------
def hours(since: datetime, until: datetime) -> Iterator[datetime]:
    """The UTC hours from `until` back to `since` (newest first)."""
    hour = until.replace(minute=0, second=0, microsecond=0)
    while hour >= since.replace(minute=0, second=0, microsecond=0):
        yield hour
        hour -= timedelta(hours=1)


def read_window(folder: Path, since: datetime, until: datetime) -> tuple[Any, bool]:
    """The input rows of the requests with since <= timestamp < until (`expand`), and whether MAX_WINDOW_ROWS
    cut the window."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, rows, truncated = [], 0, False
    # A file is in the folder of its first request's hour: the hour before `since` may hold rows of the window.
    for hour in hours(since - timedelta(hours=1), until):
        path = folder / hour.strftime("%Y-%m-%d") / hour.strftime("%H")
        if not path.is_dir():
            continue
        for file in sorted(path.glob("part-*.parquet"), reverse=True):
            try:
                table = pq.read_table(file, schema=schema())
            except (OSError, pa.ArrowException) as exc:
                log.warning("inference table: %s unreadable, skipped: %s", file, exc)
                continue
            tables.append(table)
            rows += table.num_rows  # requests: each is one row or more
            if rows >= MAX_WINDOW_ROWS:
                truncated = True
                break
        if truncated:
            break
    if not tables:
        return expand(pd.DataFrame({c: [] for c in schema().names})), False
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame[(frame["timestamp"] >= pd.Timestamp(since)) & (frame["timestamp"] < pd.Timestamp(until))]
    rows_frame = expand(frame.sort_values("timestamp"))
    return rows_frame, truncated or len(rows_frame) >= MAX_WINDOW_ROWS


@dataclass(frozen=True)
class Label:
    request_id: str
    label: Any  # a JSON value
    row: int = 0


def write_labels(folder: Path, labels: Iterable[Label], now: datetime | None = None) -> int:
    """Append labels as one Parquet file under `folder` (the deployment's `labels/`); returns how many."""
    import secrets

    import pyarrow as pa
    import pyarrow.parquet as pq

    moment = now or datetime.now(UTC)
    rows = [{"request_id": item.request_id, "row": item.row, "label": json.dumps(item.label), "posted_at": moment}
            for item in labels]  # fmt: skip
    label_schema = pa.schema([("request_id", pa.string()), ("row", pa.int32()), ("label", pa.string()),
                        ("posted_at", pa.timestamp("us", tz="UTC"))])  # fmt: skip
    day = folder / moment.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    target = day / f"part-{moment.strftime('%H%M%S%f')}-{secrets.token_hex(4)}.parquet"
    temporary = target.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=label_schema), temporary)
    os.replace(temporary, target)
    return len(rows)


def read_labels(folder: Path, since: datetime | None = None) -> tuple[Any, bool]:
    """The labels posted (the latest per request id and row) as a DataFrame: request_id, row, label; with `since`,
    only those posted from its UTC day on (a label comes after its request: older ones label older requests).
    Also whether MAX_LABEL_FILES (posts, newest first) left older ones out."""
    import pandas as pd
    import pyarrow.parquet as pq

    first_day = since.astimezone(UTC).strftime("%Y-%m-%d") if since is not None else ""
    days = [path for _, path in _days(folder) if path.name >= first_day]
    files = sorted(file for day in days for file in day.glob("part-*.parquet"))
    truncated, files = len(files) > MAX_LABEL_FILES, files[-MAX_LABEL_FILES:]
    if not files:
        return pd.DataFrame({"request_id": pd.Series(dtype="object"), "row": pd.Series(dtype="int32"),
                             "label": pd.Series(dtype="object")}), False  # fmt: skip
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    frame = frame.sort_values("posted_at").drop_duplicates(["request_id", "row"], keep="last")
    return frame[["request_id", "row", "label"]].reset_index(drop=True), truncated


def prune(folder: Path, before: datetime, limit: int = MAX_PRUNED) -> int:
    """Remove what a deployment's tables hold from before `before` (UTC): the hour folders of `folder/inference`
    whose requests all came earlier (a file sits in the hour of its first request and spans at most a second: an
    hour folder goes once the hour after it has ended too), then its day folders left empty, and the day folders of
    `folder/labels` posted earlier. Only folders named as the writers name them are touched, oldest first, at most
    `limit` of them. Returns how many were removed."""
    removed = 0
    for day, path in _days(folder / INFERENCE_DIR):
        if day >= before or removed >= limit:
            break
        hours = sorted(entry for entry in _entries(path) if _HOUR.match(entry.name) and int(entry.name) < 24)
        for hour in hours:
            if day + timedelta(hours=int(hour.name) + 2) > before or removed >= limit:
                break
            shutil.rmtree(hour, ignore_errors=True)
            removed += 1
        with contextlib.suppress(OSError):
            path.rmdir()  # only when empty
    for day, path in _days(folder / LABELS_DIR):
        if day + timedelta(days=1) > before or removed >= limit:
            break
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _days(folder: Path) -> list[tuple[datetime, Path]]:
    """The day folders (YYYY-MM-DD, UTC) of a table, oldest first."""
    found = []
    for entry in _entries(folder):
        if _DAY.match(entry.name):
            with contextlib.suppress(ValueError):
                found.append((datetime.strptime(entry.name, "%Y-%m-%d").replace(tzinfo=UTC), entry))
    return sorted(found, key=lambda item: item[0])


def _entries(folder: Path) -> list[Path]:
    """The real subfolders of `folder` (no symbolic link); none when it cannot be read."""
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir() and not entry.is_symlink()]
    except OSError:
        return []
