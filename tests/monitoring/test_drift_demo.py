"""Quickstart's drift demo (mlyard.drift_demo) without a server: its shifted rows against the baseline of the
Breast Cancer data flag exactly the shifted features, and the report is said in the demo's lines.

End to end (a trained demo model, its scoring server, the inference table, the monitor API) it runs in
tests/models/test_quickstart.py, which checks that the report of `mlyard quickstart` flags exactly
`mean radius` and `worst radius`."""

from __future__ import annotations

from mlyard.drift_demo import REQUESTS, ROWS, SHIFTED, describe, shifted_rows
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
