"""The drift and quality report of a deployment over a window of its inference table (docs/monitoring.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from mlyard.monitoring.drift import FeatureDrift, feature_drift
from mlyard.monitoring.profile import Profile
from mlyard.monitoring.table import MAX_LABEL_FILES

CLASSIFICATION, REGRESSION = "classification", "regression"
MAX_CLASSES = 50  # integer labels with more distinct values are treated as a regression target


@dataclass(frozen=True)
class QualityPoint:
    """A metric over the labelled rows of one UTC hour."""

    hour: str
    count: int
    value: float


@dataclass(frozen=True)
class Quality:
    """The model's metric on the rows whose labels were posted."""

    problem: str  # classification or regression
    metric: str  # accuracy (classification) or mae (regression)
    labelled: int
    value: float
    by_hour: tuple[QualityPoint, ...]


@dataclass(frozen=True)
class MonitorReport:
    deployment: str
    environment: str
    model_versions: tuple[str, ...]
    since: str
    until: str
    requests: int
    rows: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    truncated: bool
    baseline: str  # where the baseline came from, or "" when none was found
    features: tuple[FeatureDrift, ...]
    drifted: tuple[str, ...]
    prediction_drift: FeatureDrift | None
    quality: Quality | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(
    *, deployment: str, environment: str, frame: Any, labels: Any, profile: Profile | None, baseline: str,
    since: datetime, until: datetime, truncated: bool = False, labels_truncated: bool = False,
) -> MonitorReport:  # fmt: skip
    """The report of the input rows `frame` (table.read_window) and posted `labels` (table.read_labels)."""
    import numpy as np

    notes = []
    first_rows = frame[frame["row"] == 0]
    requests = len(first_rows)
    errors = int((first_rows["status"] >= 400).sum()) if requests else 0
    latency = first_rows["latency_ms"].to_numpy(dtype=np.float64) if requests else np.array([])
    ok = frame[frame["status"] == 200]
    inputs = list(ok["inputs"])
    predictions = [_scalar(p) for p in ok["prediction"]]
    features: list[FeatureDrift] = []
    prediction_drift = None
    if profile is None:
        notes.append("no baseline profile: log one with the model's run (mlyard.monitoring.profile.log_profile) "
                     "to get drift")  # fmt: skip
    else:
        for feature in profile.features:
            features.append(feature_drift(feature, [row.get(feature.name) if row else None for row in inputs]))
        if profile.prediction is not None:
            prediction_drift = feature_drift(profile.prediction, predictions)
        unknown = sorted({k for row in inputs if row for k in row} - {f.name for f in profile.features})[:20]
        if unknown:
            notes.append(f"columns not in the baseline (not checked): {', '.join(unknown)}")
    if requests == 0:
        notes.append("no request in the window")
    if truncated:
        notes.append("the window holds more rows than a report reads: the oldest were left out")
    if labels_truncated:
        notes.append(f"more labels were posted since the window began than a report reads ({MAX_LABEL_FILES} posts): "
                     "the oldest posts were left out")  # fmt: skip
    return MonitorReport(
        deployment=deployment, environment=environment,
        model_versions=tuple(sorted({str(v) for v in frame["model_version"].dropna()})),
        since=since.isoformat(timespec="seconds"), until=until.isoformat(timespec="seconds"), requests=requests,
        rows=len(frame), errors=errors, error_rate=errors / requests if requests else 0.0,
        latency_p50_ms=float(np.percentile(latency, 50)) if latency.size else None,
        latency_p99_ms=float(np.percentile(latency, 99)) if latency.size else None, truncated=truncated,
        baseline=baseline if profile is not None else "", features=tuple(features),
        drifted=tuple(f.name for f in features if f.drifted), prediction_drift=prediction_drift,
        quality=quality(ok, labels, predictions), notes=tuple(notes),
    )  # fmt: skip


def quality(ok: Any, labels: Any, predictions: list[Any]) -> Quality | None:
    """Accuracy (classification: labels are strings, booleans or few integers) or mean absolute error."""
    import numpy as np
    import pandas as pd

    if labels is None or len(labels) == 0 or len(ok) == 0:
        return None
    served = pd.DataFrame({"request_id": ok["request_id"].to_numpy(), "row": ok["row"].to_numpy(dtype=np.int64),
                           "hour": ok["timestamp"].dt.strftime("%Y-%m-%dT%H:00Z").to_numpy(),
                           "prediction": predictions})  # fmt: skip
    posted = pd.DataFrame({"request_id": labels["request_id"].to_numpy(),
                           "row": labels["row"].to_numpy(dtype=np.int64),
                           "label": [_scalar(v) for v in _decode(labels["label"])]})  # fmt: skip
    joined = served.merge(posted, on=["request_id", "row"], how="inner")
    joined = joined[joined["label"].notna() & joined["prediction"].notna()]
    if joined.empty:
        return None
    problem = problem_type(list(joined["label"]), list(joined["prediction"]))
    if problem == CLASSIFICATION:
        scores = (joined["label"].astype(str) == joined["prediction"].map(_class_name)).astype(float)
        metric = "accuracy"
    else:
        scores = (pd.to_numeric(joined["label"], errors="coerce") - pd.to_numeric(joined["prediction"],
                                                                                   errors="coerce")).abs()  # fmt: skip
        metric = "mae"
    joined = joined.assign(score=scores).dropna(subset=["score"])
    if joined.empty:
        return None
    by_hour = tuple(QualityPoint(hour=str(h), count=len(g), value=float(g["score"].mean()))
                    for h, g in joined.groupby("hour", sort=True))  # fmt: skip
    return Quality(problem=problem, metric=metric, labelled=len(joined), value=float(joined["score"].mean()),
                   by_hour=by_hour)  # fmt: skip


def problem_type(labels: list[Any], predictions: list[Any]) -> str:
    """Classification when the labels are strings or booleans, or integers with few distinct values."""
    if any(isinstance(v, (str, bool)) for v in labels):
        return CLASSIFICATION
    whole = all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in labels)
    integral = all(isinstance(p, (int, bool, str)) or (isinstance(p, float) and p.is_integer()) for p in predictions)
    return CLASSIFICATION if whole and integral and len(set(labels)) <= MAX_CLASSES else REGRESSION


def _class_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _decode(values: Any) -> list[Any]:
    out = []
    for value in values:
        try:
            out.append(json.loads(value) if isinstance(value, str) else None)
        except ValueError:
            out.append(None)
    return out


def _scalar(value: Any) -> Any:
    """A prediction of one output (a list of one, or a {name: value} of one) as its value."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value if not isinstance(value, (list, dict)) else json.dumps(value)



