"""The baseline profile of the training data, logged with the model so that production traffic can be
compared with it (drift).

`log_baseline(features, predictions)` writes `baseline/profile.json` into the active MLflow run: per
feature its kind (`numeric` or `categorical`), row count and missing rate; for numeric features the
percentiles 0..100, the inner edges of 10 equal-frequency bins with the share of values in each, mean and
standard deviation; for categorical ones the 50 most frequent values with their shares (the rest as
`__other__`). Whole-number columns with at most 20 distinct values (class labels, small counts) are
categorical. With `predictions`, the model's predictions on the training data are profiled as `prediction`.

The monitoring of the serving target reads this file from the deployed version's run (format 1, the same
JSON as the platform's own profiler writes); needs pandas, numpy and mlflow only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

ARTIFACT = "baseline/profile.json"
FORMAT = 1
HISTOGRAM_BINS = 10
QUANTILES = 101
MAX_CATEGORIES = 50
MAX_FEATURES = 1000
MAX_DISCRETE = 20
OTHER = "__other__"


def profile(features: pd.DataFrame, predictions: Any = None) -> dict[str, Any]:
    """The profile of a training DataFrame (and of the model's predictions on it) as a JSON-ready dict."""
    if len(features.columns) > MAX_FEATURES:
        raise ValueError(f"{len(features.columns)} columns: a baseline profile holds at most {MAX_FEATURES}")
    columns = [profile_column(str(name), features[name]) for name in features.columns]
    prediction = None if predictions is None else profile_column("prediction", _flat(predictions))
    return {"rows": len(features), "features": columns, "prediction": prediction, "format": FORMAT}


def log_baseline(features: pd.DataFrame, predictions: Any = None) -> dict[str, Any]:
    """Log the profile into the active MLflow run as `baseline/profile.json`; returns it."""
    import mlflow

    found = profile(features, predictions)
    mlflow.log_dict(found, ARTIFACT)
    return found


def profile_column(name: str, values: Any) -> dict[str, Any]:
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    count = len(series)
    present = series.dropna()
    missing = (count - len(present)) / count if count else 0.0
    column: dict[str, Any] = {"name": name, "kind": "numeric", "count": count, "missing_rate": missing,
                              "quantiles": [], "edges": [], "fractions": [], "categories": [],
                              "mean": None, "std": None}  # fmt: skip
    if _numeric(series) and not _discrete(present):
        data = present.to_numpy(dtype=np.float64)
        data = data[np.isfinite(data)]
        if data.size == 0:
            return column
        edges = np.unique(np.quantile(data, np.linspace(0, 1, HISTOGRAM_BINS + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=len(edges) + 1)
        column.update(quantiles=_floats(np.quantile(data, np.linspace(0, 1, QUANTILES))), edges=_floats(edges),
                      fractions=_floats(counts / max(1, len(data))), mean=float(data.mean()),
                      std=float(data.std()))  # fmt: skip
        return column
    shares = present.map(_category).value_counts(normalize=True)
    top = [[str(k), float(v)] for k, v in shares.head(MAX_CATEGORIES).items()]
    rest = 1.0 - sum(s for _, s in top)
    if rest > 1e-12:
        top.append([OTHER, rest])
    column.update(kind="categorical", categories=top)
    return column


def _numeric(values: Any) -> bool:
    dtype = values.dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def _discrete(present: Any) -> bool:
    if not _numeric(present) or present.empty:
        return False
    data = present.to_numpy(dtype=np.float64)
    return bool(np.all(np.mod(data, 1) == 0)) and len(np.unique(data)) <= MAX_DISCRETE


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):
        return _category(value.item())
    return str(value)


def _flat(predictions: Any) -> pd.Series:
    if isinstance(predictions, pd.DataFrame):
        return predictions.iloc[:, 0]
    array = np.asarray(predictions)
    return pd.Series(array.reshape(len(array), -1)[:, 0] if array.ndim > 1 else array)


def _floats(values: Any) -> list[float]:
    return [float(v) if math.isfinite(float(v)) else 0.0 for v in values]
