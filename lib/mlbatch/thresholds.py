"""The class threshold rule that train (before a refit) and evaluate share."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve


def best_f1(y: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    """(threshold, F1) of the probability threshold with the highest F1; None when the rows
    hold one class."""
    if len(np.unique(y)) < 2:
        return None
    precision, recall, thresholds = precision_recall_curve(y, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    return float(thresholds[best]), float(f1[best])
