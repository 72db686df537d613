"""Baseline profile of a training DataFrame: per feature its type, missing rate, quantiles and histogram
(numeric) or category frequencies (categorical), as a typed, JSON-serialisable model.

A training job logs it with its model: `log_profile(profile_frame(X, predictions=model.predict(X)))` writes
`baseline/profile.json` into the active MLflow run; the monitor report of a deployed version reads it from that
version's run (`load_profile`). Needs pandas and numpy only (MLflow for logging / loading).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

PROFILE_ARTIFACT = "baseline/profile.json"
FORMAT = 1
NUMERIC, CATEGORICAL = "numeric", "categorical"
HISTOGRAM_BINS = 10  # equal-frequency bins on the training data: PSI's usual 10 buckets
QUANTILES = 101  # percentiles 0..100: the baseline CDF for the Kolmogorov-Smirnov test
MAX_CATEGORIES = 50  # the most frequent categories kept; the rest count as OTHER
MAX_FEATURES = 1000
MAX_DISCRETE = 20  # integer-valued columns with at most this many values (classes, counts) are categorical
OTHER = "__other__"
PREDICTION = "prediction"
PROXIED = "mlflow-artifacts:"  # the artifact locations of runs logged through a proxying tracking server
MAX_PROFILE_BYTES = 64 * 1024 * 1024  # a profile of MAX_FEATURES features is far smaller


@dataclass(frozen=True)
class FeatureProfile:
    """One column of the training data."""

    name: str
    kind: str  # NUMERIC or CATEGORICAL
    count: int  # rows
    missing_rate: float
    quantiles: tuple[float, ...] = ()  # numeric: percentiles 0, 1, ..., 100 of the non-missing values
    edges: tuple[float, ...] = ()  # numeric: inner histogram edges (bins: (-inf, e0], (e0, e1], ..., (e_k, inf))
    fractions: tuple[float, ...] = ()  # numeric: share of non-missing values per bin (len(edges) + 1)
    categories: tuple[tuple[str, float], ...] = ()  # categorical: (value, share), most frequent first
    mean: float | None = None
    std: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        return cls(
            name=str(data["name"]), kind=str(data["kind"]), count=int(data["count"]),
            missing_rate=float(data["missing_rate"]), quantiles=tuple(float(q) for q in data.get("quantiles", ())),
            edges=tuple(float(e) for e in data.get("edges", ())),
            fractions=tuple(float(f) for f in data.get("fractions", ())),
            categories=tuple((str(c), float(s)) for c, s in data.get("categories", ())),
            mean=data.get("mean"), std=data.get("std"),
        )  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """The baseline of a model version: its training data's features (and, optionally, its predictions)."""

    rows: int
    features: tuple[FeatureProfile, ...]
    prediction: FeatureProfile | None = None
    format: int = field(default=FORMAT)

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a baseline profile of format {FORMAT}")
        prediction = data.get("prediction")
        return cls(
            rows=int(data["rows"]),
            features=tuple(FeatureProfile.from_dict(f) for f in data["features"]),
            prediction=FeatureProfile.from_dict(prediction) if prediction else None,
        )


def is_numeric(values: Any) -> bool:
    """True for int/float columns (booleans are categorical)."""
    import pandas as pd

    dtype = values.dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def profile_series(name: str, values: Any) -> FeatureProfile:
    """The profile of one column (a pandas Series or anything `pd.Series` accepts)."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    count = len(series)
    present = series.dropna()
    missing = (count - len(present)) / count if count else 0.0
    if is_numeric(series) and not is_discrete(present):
        data = present.to_numpy(dtype=np.float64)
        data = data[np.isfinite(data)]
        if data.size == 0:
            return FeatureProfile(name=name, kind=NUMERIC, count=count, missing_rate=missing)
        quantiles = np.quantile(data, np.linspace(0, 1, QUANTILES))
        edges = np.unique(np.quantile(data, np.linspace(0, 1, HISTOGRAM_BINS + 1)[1:-1]))
        fractions = bin_fractions(data, edges)
        return FeatureProfile(
            name=name, kind=NUMERIC, count=count, missing_rate=missing, quantiles=_floats(quantiles),
            edges=_floats(edges), fractions=_floats(fractions), mean=float(data.mean()), std=float(data.std()),
        )  # fmt: skip
    shares = present.map(category).value_counts(normalize=True)
    top = [(str(k), float(v)) for k, v in shares.head(MAX_CATEGORIES).items()]
    rest = 1.0 - sum(s for _, s in top)
    if rest > 1e-12:
        top.append((OTHER, rest))
    return FeatureProfile(name=name, kind=CATEGORICAL, count=count, missing_rate=missing, categories=tuple(top))


def is_discrete(present: Any) -> bool:
    """Numbers that are all whole and take at most MAX_DISCRETE values (a classifier's labels)."""
    import numpy as np

    if not is_numeric(present) or present.empty:
        return False
    data = present.to_numpy(dtype=np.float64)
    return bool(np.all(np.mod(data, 1) == 0)) and len(np.unique(data)) <= MAX_DISCRETE


def category(value: Any) -> str:
    """A categorical value as the text both the profile and the served values compare by (1.0 is "1")."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return category(value.item())
    return str(value)


def bin_fractions(data: Any, edges: Any) -> Any:
    """Share of `data` in each bin of `edges` ((-inf, e0], (e0, e1], ..., (e_last, inf))."""
    import numpy as np

    counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=len(edges) + 1)
    return counts / max(1, len(data))


def profile_frame(frame: Any, predictions: Any = None) -> Profile:
    """The baseline profile of a training DataFrame (and of the model's predictions on it, if given)."""
    if len(frame.columns) > MAX_FEATURES:
        raise ValueError(f"{len(frame.columns)} columns: a profile holds at most {MAX_FEATURES}")
    features = tuple(profile_series(str(name), frame[name]) for name in frame.columns)
    prediction = None
    if predictions is not None:
        prediction = profile_series(PREDICTION, _flat(predictions))
    return Profile(rows=len(frame), features=features, prediction=prediction)


def log_profile(
    profile: Profile, artifact_file: str = PROFILE_ARTIFACT, *, run_id: str | None = None,
    tracking_uri: str | None = None,
) -> None:  # fmt: skip
    """Log the profile as a JSON artifact of the active MLflow run, or of run `run_id` (at `tracking_uri`)."""
    import mlflow

    if run_id is None:
        mlflow.log_dict(profile.to_dict(), artifact_file)
    else:
        mlflow.MlflowClient(tracking_uri=tracking_uri).log_dict(run_id, profile.to_dict(), artifact_file)


def load_profile(
    tracking_uri: str, run_id: str, artifact_file: str = PROFILE_ARTIFACT, *, artifacts_destination: Path | None = None
) -> Profile | None:
    """The profile logged with run `run_id`, or None when it has none.

    A run logged through an MLflow tracking server that proxies artifacts (`/mlflow/<env>`, the generated
    project's training) has `mlflow-artifacts:/` locations, which only that server resolves: with
    `artifacts_destination` (the folder the server stores them in) the file is read from there, as is one of a run
    whose `file:` location is inside it (`local_artifacts`). (The server reads both without MLflow:
    mlyard.services.monitoring.baseline_profile.)
    """
    import tempfile

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    folder, _, name = artifact_file.rpartition("/")
    try:
        root = client.get_run(run_id).info.artifact_uri or ""
        local = local_artifacts(artifacts_destination, root) if artifacts_destination is not None else None
        if local is not None:
            return read_profile_file(local, artifact_file)
        if name not in {a.path.rpartition("/")[2] for a in client.list_artifacts(run_id, folder or None)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, artifact_file, tmp)
            with open(path, encoding="utf-8") as fh:
                return Profile.from_dict(json.load(fh))
    except (MlflowException, OSError, ValueError, KeyError, TypeError):
        return None


def local_artifacts(destination: Path, artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts (`artifact_uri`) when it is inside `destination`, the environment's
    artifacts folder: a run logged through its tracking server (`mlflow-artifacts:/...`, which only that server
    resolves) or straight to its store (`file:///...`, the default experiment's location). None for any other
    location (another folder, a remote store)."""
    if artifact_uri.startswith(PROXIED):
        folder = destination / artifact_uri.removeprefix(PROXIED).lstrip("/")
    elif artifact_uri.startswith("file:"):
        folder = Path(url2pathname(urlparse(artifact_uri).path))
    else:
        return None
    base = destination.resolve()
    folder = folder.resolve()
    return folder if folder.is_relative_to(base) else None


def read_profile_file(folder: Path, artifact_file: str = PROFILE_ARTIFACT) -> Profile | None:
    """The profile `artifact_file` in a run's artifacts `folder` (see `local_artifacts`), read without MLflow;
    None when there is none (or the file leaves that folder, or is not a profile)."""
    base = folder.resolve()
    path = (base / artifact_file).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.stat().st_size > MAX_PROFILE_BYTES:
        return None
    try:
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _flat(predictions: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions.iloc[:, 0]
    array = np.asarray(predictions)
    return pd.Series(array.reshape(len(array), -1)[:, 0] if array.ndim > 1 else array)


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) if math.isfinite(float(v)) else 0.0 for v in values)
