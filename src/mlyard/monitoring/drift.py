"""Drift statistics of a window of served values against a feature's baseline profile (numpy and scipy).

Numeric (continuous): PSI over the baseline's 10 equal-frequency bins, and the one-sample Kolmogorov-Smirnov
test against the baseline's CDF (its percentiles, linearly interpolated). Categorical (and whole numbers with
few values, e.g. class labels): PSI over the baseline's categories
(unseen values count as `__other__`) and the chi-square goodness-of-fit test. The thresholds that flag a
feature are the constants below (docs/monitoring.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlyard.monitoring.profile import CATEGORICAL, OTHER, FeatureProfile, bin_fractions, category

PSI_DRIFT = 0.2  # PSI >= 0.2: a significant shift (the usual rule of thumb; 0.1-0.2 is moderate)
P_VALUE = 0.01  # a test's p-value below this, together with an effect of at least ...
KS_EFFECT = 0.1  # ... a KS statistic (largest CDF gap) of 0.1, or ...
PSI_EFFECT = 0.1  # ... a PSI of 0.1 for the chi-square test: large samples make tiny shifts significant
MIN_SAMPLES = 30  # fewer values in the window: reported, never flagged
_EPS = 1e-4  # empty bins: PSI's logarithm needs a floor


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift over the window."""

    name: str
    kind: str
    count: int  # non-missing values in the window
    missing_rate: float
    baseline_missing_rate: float
    psi: float | None
    test: str  # "ks" or "chi2"
    statistic: float | None
    p_value: float | None
    drifted: bool
    reason: str  # why it is (or is not) flagged, in words


def psi(expected: Any, actual: Any) -> float:
    """Population stability index of two distributions over the same bins (shares, floored at 1e-4)."""
    import numpy as np

    e = np.clip(np.asarray(expected, dtype=np.float64), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(baseline: FeatureProfile, values: Any) -> FeatureDrift:
    """Drift of `values` (a sequence, None for missing) against `baseline`."""
    import pandas as pd

    series = pd.Series(values, dtype="object" if baseline.kind == CATEGORICAL else None)
    total = len(series)
    present = series.dropna()
    missing = (total - len(present)) / total if total else 0.0
    common = {"name": baseline.name, "kind": baseline.kind, "missing_rate": missing,
              "baseline_missing_rate": baseline.missing_rate}  # fmt: skip
    if baseline.kind == CATEGORICAL:
        return _categorical(baseline, present, common)
    return _numeric(baseline, present, common)


def _numeric(baseline: FeatureProfile, present: Any, common: dict[str, Any]) -> FeatureDrift:
    import numpy as np
    from scipy import stats

    data = pd_numeric(present)
    n = int(data.size)
    if n < MIN_SAMPLES or not baseline.quantiles:
        return FeatureDrift(**common, count=n, psi=None, test="ks", statistic=None, p_value=None, drifted=False,
                            reason=f"{n} values: at least {MIN_SAMPLES} are needed")  # fmt: skip
    value = psi(baseline.fractions, bin_fractions(data, np.asarray(baseline.edges)))
    quantiles = np.asarray(baseline.quantiles)
    levels = np.linspace(0, 1, len(quantiles))

    def cdf(x: Any) -> Any:
        return np.interp(x, quantiles, levels, left=0.0, right=1.0)

    result = stats.kstest(data, cdf)
    d, p = float(result.statistic), float(result.pvalue)
    effect = f"statistic {d:.3f} >= {KS_EFFECT}" if d >= KS_EFFECT else ""
    return _verdict(common, n, value, "ks", d, p, effect)


def _categorical(baseline: FeatureProfile, present: Any, common: dict[str, Any]) -> FeatureDrift:
    import numpy as np
    from scipy import stats

    n = len(present)
    if n < MIN_SAMPLES or not baseline.categories:
        return FeatureDrift(**common, count=n, psi=None, test="chi2", statistic=None, p_value=None, drifted=False,
                            reason=f"{n} values: at least {MIN_SAMPLES} are needed")  # fmt: skip
    names = [c for c, _ in baseline.categories if c != OTHER]
    known = set(names)
    expected = np.array([s for c, s in baseline.categories if c != OTHER] + [1.0 - sum(s for c, s in baseline.categories
                                                                                     if c != OTHER)])  # fmt: skip
    labels = present.map(category)
    counts = labels[labels.isin(known)].value_counts()
    observed = np.array([int(counts.get(c, 0)) for c in names] + [int((~labels.isin(known)).sum())], dtype=np.float64)
    value = psi(expected, observed / n)
    floor = np.clip(expected, _EPS, None)
    exp_counts = floor / floor.sum() * n
    result = stats.chisquare(observed, exp_counts)
    stat, p = float(result.statistic), float(result.pvalue)
    effect = f"PSI {value:.3f} >= {PSI_EFFECT}" if value >= PSI_EFFECT else ""
    return _verdict(common, n, value, "chi2", stat, p, effect)


_TEST_NAMES = {"ks": "KS", "chi2": "chi-square"}


def _verdict(common: dict[str, Any], n: int, value: float, test: str, statistic: float, p: float,
             effect: str) -> FeatureDrift:  # fmt: skip
    """Flagged when PSI alone passes PSI_DRIFT, or when the test is significant with a large enough `effect`
    (empty: too small)."""
    reasons = []
    if value >= PSI_DRIFT:
        reasons.append(f"PSI {value:.3f} >= {PSI_DRIFT}")
    if p < P_VALUE and effect:
        reasons.append(f"{_TEST_NAMES[test]} p-value {p:.2g} < {P_VALUE} with {effect}")
    return FeatureDrift(**common, count=n, psi=value, test=test, statistic=statistic, p_value=p,
                        drifted=bool(reasons), reason="; ".join(reasons) or "within thresholds")  # fmt: skip


def pd_numeric(values: Any) -> Any:
    """Finite float values of a sequence (non-numbers dropped)."""
    import numpy as np
    import pandas as pd

    data = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    return data[np.isfinite(data)]
