"""Test-set metrics per task, with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

THRESHOLD = 0.5  # binary accuracy: class 1 when its probability reaches this


def compute_metrics(task: str, y: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict:
    """binary: roc_auc, log_loss, accuracy; multiclass: the same (AUC macro one-vs-rest);
    regression: rmse, mae, r2. A metric the test rows cannot define is left out."""
    if task == "regression":
        return {
            "rmse": float(np.sqrt(mean_squared_error(y, predictions))),
            "mae": float(mean_absolute_error(y, predictions)),
            "r2": float(r2_score(y, predictions)),
        }
    labels = list(range(num_classes))
    if task == "binary":
        metrics = {"roc_auc": binary_auc(y, predictions)}
        predicted = (predictions >= THRESHOLD).astype(int)
    else:
        metrics = {"roc_auc": macro_auc(y, predictions)}
        predicted = predictions.argmax(axis=1)
    metrics["log_loss"] = float(log_loss(y, predictions, labels=labels))
    metrics["accuracy"] = float(accuracy_score(y, predicted))
    return {name: value for name, value in metrics.items() if value is not None}


def binary_auc(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC AUC, or None when the rows hold only one class."""
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, probabilities))


def macro_auc(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Mean one-vs-rest ROC AUC over the classes present (scikit-learn's macro OvR when all are:
    a small test split may miss a rare class, which scikit-learn refuses)."""
    aucs = [
        binary_auc((y == k).astype(int), probabilities[:, k])
        for k in range(probabilities.shape[1])
        if 0 < (y == k).sum() < len(y)
    ]
    return float(np.mean(aucs)) if aucs else None
