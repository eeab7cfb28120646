"""The tuning metric of each task (mlbatch.tasks.TUNING_METRIC), scored on the validation split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from mlbatch.tasks import TUNING_METRIC


def tuning_score(task: str, y: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """The task's tuning metric of predictions (probabilities or values) against y."""
    metric, _ = TUNING_METRIC[task]
    if metric == "roc_auc":
        return float(roc_auc_score(y, predictions))
    if metric == "log_loss":
        return float(log_loss(y, predictions, labels=list(range(num_classes))))
    if metric == "rmse":
        return float(np.sqrt(mean_squared_error(y, predictions)))
    raise ValueError(f"no scorer for tuning metric {metric!r}")


def sort_best_first(rows: list[dict], key: str, mode: str) -> list[dict]:
    """Rows ordered from the best to the worst value of key ('max' or 'min' is best)."""
    return sorted(rows, key=lambda row: row[key], reverse=mode == "max")
