"""Quickstart's drift demo (mlyard.drift_demo) without a server: its shifted rows against the baseline of the
Breast Cancer data flag exactly the shifted features, and the report is said in the demo's lines.

End to end (a trained demo model, its scoring server, the inference table, the monitor API) it runs in
tests/models/test_quickstart.py, which checks that the report of `mlyard quickstart` flags exactly
`mean radius` and `worst radius`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlyard import drift_demo
from mlyard.drift_demo import REQUESTS, ROWS, SHIFTED, DemoData, describe, load_demo_data, shifted_rows
from mlyard.monitoring.drift import feature_drift
from mlyard.monitoring.profile import profile_frame
from mlyard.views import FeatureDriftView, MonitorReportView


def test_the_demo_rows_drift_in_exactly_the_shifted_features() -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    profile = profile_frame(data.data.astype("float64"))
    columns, rows = shifted_rows(REQUESTS * ROWS)
    assert (len(rows), columns) == (200, [str(c) for c in data.feature_names])
    drifts = [feature_drift(f, [row[columns.index(f.name)] for row in rows]) for f in profile.features]
    assert sorted(d.name for d in drifts if d.drifted) == sorted(SHIFTED)
    report = MonitorReportView(deployment="demo", environment="dev", requests=REQUESTS, rows=len(rows),
                               drifted=[d.name for d in drifts if d.drifted],
                               features=[FeatureDriftView.from_dict(vars(d)) for d in drifts])  # fmt: skip
    said = describe(report)
    assert said[0].startswith("drift report of demo in dev (last hour): 40 requests, 200 rows")
    assert said[1] == "drifted features: mean radius, worst radius"
    assert [line.split(":")[0] for line in said[2:4]] == ["  DRIFT mean radius", "  DRIFT worst radius"]


def _sklearn_data() -> DemoData:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    columns = tuple(str(c) for c in data.feature_names)
    values = data.frame[list(columns)].astype("float64").to_numpy().tolist()
    return DemoData(columns, tuple(tuple(float(x) for x in row) for row in values))


def test_the_demo_data_is_scikit_learns_breast_cancer_data_read_without_importing_scikit_learn() -> None:
    """quickstart loads the demo data while the unit tests run: reading the data file must give exactly what
    `load_breast_cancer` gives (names, order, values), and must not import scikit-learn (seconds of CPU)."""
    assert load_demo_data() == _sklearn_data()
    probe = (
        "import sys; from mlyard.drift_demo import load_demo_data; data = load_demo_data(); "
        "print(len(data.rows), sorted(m for m in ('sklearn', 'pandas', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[0] == "569 []"


def test_the_demo_data_comes_from_scikit_learn_when_its_data_file_is_not_where_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drift_demo, "DATA_FILE", ("datasets", "data", "no-such-file.csv"))
    assert drift_demo._read_data_file() is None
    assert load_demo_data() == _sklearn_data()
