"""Quickstart's drift demo: send the deployed demo model a batch of shifted requests, then read and print the
monitor report that flags the shifted features (docs/monitoring.md).

The demo model is trained on scikit-learn's Breast Cancer data; the batch is rows of that data with
SHIFTED multiplied by SCALE, so exactly those features move away from the baseline its training logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlyard.client import Client
    from mlyard.views import MonitorReportView

SHIFTED = ("mean radius", "worst radius")  # the features the demo shifts
SCALE = 1.6
REQUESTS, ROWS = 40, 5  # 200 rows: enough for both tests (30 values at least) with a clear verdict
WAIT = 30.0  # seconds for the scoring server's log to reach the table (it writes every second)


@dataclass(frozen=True)
class DemoData:
    """scikit-learn's Breast Cancer data as the demo project's features: the column names and every row."""

    columns: tuple[str, ...]
    rows: tuple[tuple[float, ...], ...]


# scikit-learn's names of the Breast Cancer features (sklearn.datasets.load_breast_cancer), in the data file's order
FEATURES = tuple(
    f"{kind} {name}" if kind != "error" else f"{name} error"
    for kind in ("mean", "error", "worst")
    for name in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                 "concave points", "symmetry", "fractal dimension")
)  # fmt: skip
DATA_FILE = ("datasets", "data", "breast_cancer.csv")  # inside the installed sklearn package
MAX_DATA_BYTES = 1 << 20  # the file is 120 kB


def load_demo_data() -> DemoData:
    """The data: read from scikit-learn's own data file without importing scikit-learn (its import, with
    SciPy and pandas, costs seconds of CPU); through `load_breast_cancer` when that file is not found as
    expected (another layout of the package)."""
    found = _read_data_file()
    if found is not None:
        return found
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    columns = tuple(str(c) for c in data.feature_names)
    values = data.frame[list(columns)].astype("float64").to_numpy().tolist()
    return DemoData(columns, tuple(tuple(float(x) for x in row) for row in values))


def _read_data_file() -> DemoData | None:
    """The rows of sklearn/datasets/data/breast_cancer.csv (a header `n_samples,n_features,target names...`,
    then the features and the target of each row), or None when it is missing or not of that form."""
    import csv
    import importlib.util
    import io
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("sklearn")  # finds the package, does not import it
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if not folders:
            return None
        path = Path(folders[0]).joinpath(*DATA_FILE)
        if path.stat().st_size > MAX_DATA_BYTES:
            return None
        lines = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
        head = next(lines)
        samples, features = int(head[0]), int(head[1])
        rows = tuple(tuple(float(x) for x in line[:features]) for line in lines if line)
    except (OSError, ValueError, IndexError, StopIteration, ImportError):
        return None
    if features != len(FEATURES) or len(rows) != samples or any(len(row) != features for row in rows):
        return None
    return DemoData(FEATURES, rows)


def shifted_rows(rows: int, seed: int = 0, data: DemoData | None = None) -> tuple[list[str], list[list[float]]]:
    """`rows` rows of the Breast Cancer data (columns as the demo project's features), SHIFTED scaled."""
    import numpy as np

    data = data or load_demo_data()
    shifted = [data.columns.index(name) for name in SHIFTED]
    picked = []
    for index in np.random.default_rng(seed).integers(0, len(data.rows), rows):
        row = list(data.rows[int(index)])
        for column in shifted:
            row[column] *= SCALE
        picked.append(row)
    return list(data.columns), picked


def run_drift_demo(
    api: Client, env: str, model: str, scoring_uri: str, say: Callable[[str], None], *, timeout: float = WAIT,
    data: DemoData | None = None,
) -> MonitorReportView:
    """Send the shifted batch to `scoring_uri`, wait until the monitor report holds it, `say` the report."""
    import httpx

    before = api.deployments.monitor(env, model, window="1h").requests
    columns, rows = shifted_rows(REQUESTS * ROWS, data=data)
    with httpx.Client(timeout=30) as http:
        for start in range(0, len(rows), ROWS):
            body = {"dataframe_split": {"columns": columns, "data": rows[start : start + ROWS]}}
            http.post(scoring_uri, json=body).raise_for_status()
    say(f"sent {REQUESTS} requests ({REQUESTS * ROWS} rows) with {' and '.join(SHIFTED)} x{SCALE}")
    deadline = time.monotonic() + timeout
    report = api.deployments.monitor(env, model, window="1h")
    while report.requests < before + REQUESTS and time.monotonic() < deadline:
        time.sleep(0.5)
        report = api.deployments.monitor(env, model, window="1h")
    for line in describe(report):
        say(line)
    return report


def describe(report: MonitorReportView) -> list[str]:
    """The report in a few lines: volume, latency, the drifted features with their statistics."""
    p50 = "-" if report.latency_p50_ms is None else f"{report.latency_p50_ms:.2f} ms"
    lines = [
        f"drift report of {report.deployment} in {report.environment} (last hour): {report.requests} requests, "
        f"{report.rows} rows, latency p50 {p50}, baseline: {report.baseline or 'none'}",
        f"drifted features: {', '.join(report.drifted) or 'none'}",
    ]
    for feature in report.features:
        if feature.drifted:
            lines.append(f"  DRIFT {feature.name}: {feature.reason}")
    lines += [f"note: {note}" for note in report.notes]
    return lines
