"""Metrics of a binary classifier: the numbers logged to MLflow and checked by model CI
(`mlops/model-gates.yml`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], y_score: Sequence[float] | None = None
) -> dict[str, float]:
    """accuracy, precision, recall and f1 of the predictions; roc_auc too when scores are given
    (the probability of the positive class)."""
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "recall": recall_score(y_true, y_pred, zero_division=0),
        "f1": f1_score(y_true, y_pred, zero_division=0),
    }
    if y_score is not None:
        metrics["roc_auc"] = roc_auc_score(y_true, y_score)
    return {name: float(value) for name, value in metrics.items()}


def evaluate(model: Any, features: Any, labels: Sequence[Any]) -> dict[str, float]:
    """The metrics of a fitted model on `features` and their true `labels`."""
    predictions = np.asarray(model.predict(features))
    scores = model.predict_proba(features)[:, 1] if hasattr(model, "predict_proba") else None
    return classification_metrics(labels, predictions, scores)
