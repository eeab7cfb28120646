"""The tuning metric: chosen from the task or the spec, scored exactly at a trial's end, and
followed round by round through each library's own evaluation metric."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from mlbatch.errors import BadInput
from mlbatch.spec.train import TUNING_METRICS
from mlbatch.tasks import TUNING_METRIC

CLASSIFICATION = ("roc_auc", "log_loss", "accuracy")
REGRESSION = ("rmse", "mae", "r2")

# Per task, the native metric each booster evaluates every round for the tuning metric,
# where early stopping follows it too. AUC and accuracy have none here: they stop on log
# loss (below) and are scored exactly from the booster's predictions every report_every
# rounds (round_scores.py), since a native AUC sorts the valid split every round.
NATIVE = {
    "xgboost": {"log_loss": ("logloss", "mlogloss"), "rmse": "rmse", "mae": "mae", "r2": "rmse"},
    "lightgbm": {
        "log_loss": ("binary_logloss", "multi_logloss"), "rmse": "rmse", "mae": "l1", "r2": "rmse",
    },
}  # fmt: skip

# Early stopping follows log loss where the tuning metric is AUC or accuracy: on a small or
# imbalanced validation split those jump from round to round and peak by chance within
# the first rounds (Caravan, 55 positives: best rounds of 2-12, refits of 4 trees, test
# AUC 0.71 against 0.74 when stopped on log loss), while log loss, a proper score of the
# same probabilities, moves smoothly. Trials are still reported and compared on the
# tuning metric.
STOPPING = {
    "xgboost": ("logloss", "mlogloss"),
    "lightgbm": ("binary_logloss", "multi_logloss"),
}
STOPS_ON_LOG_LOSS = ("roc_auc", "accuracy")


@dataclass(frozen=True)
class TuningMetric:
    name: str
    mode: str  # "max" or "min": which end is better
    task: str

    def score(self, y: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
        """The metric of probabilities (classification) or values (regression) against y."""
        if self.name == "roc_auc":
            if self.task == "binary":
                return float(roc_auc_score(y, predictions))
            labels = list(range(num_classes))
            return float(roc_auc_score(y, predictions, multi_class="ovr", labels=labels))
        if self.name == "log_loss":
            return float(log_loss(y, predictions, labels=list(range(max(num_classes, 2)))))
        if self.name == "accuracy":
            predicted = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions >= 0.5
            return float(accuracy_score(y, predicted.astype(int)))
        if self.name == "rmse":
            return float(np.sqrt(mean_squared_error(y, predictions)))
        if self.name == "mae":
            return float(mean_absolute_error(y, predictions))
        return float(r2_score(y, predictions))

    def native(self, library: str) -> str | None:
        """The library's per-round evaluation metric that follows this one, or None where
        the metric is scored from predictions instead (AUC, accuracy)."""
        name = NATIVE[library].get(self.name)
        if isinstance(name, tuple):
            return name[self.task == "multiclass"]
        return name

    def stopping(self, library: str) -> str:
        """The library's per-round metric that early stopping follows."""
        if self.name in STOPS_ON_LOG_LOSS:
            return STOPPING[library][self.task == "multiclass"]
        return self.native(library)

    def from_native(self, value: float, y: np.ndarray) -> float:
        """A native per-round value as this metric (RMSE to R²)."""
        if self.name == "r2":
            variance = float(np.var(y))
            return 1.0 - value**2 / variance if variance > 0 else 0.0
        return value

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


def tuning_metric(task: str, name: str | None) -> TuningMetric:
    """The spec's metric, or the task's default; BadInput if it does not fit the task."""
    chosen = name or TUNING_METRIC[task][0]
    fits = REGRESSION if task == "regression" else CLASSIFICATION
    if chosen not in fits:
        raise BadInput(f"train.metric {chosen} does not fit a {task} task: use one of {fits}")
    return TuningMetric(chosen, TUNING_METRICS[chosen], task)


def sort_best_first(rows: list[dict], key: str, mode: str) -> list[dict]:
    """Rows ordered from the best to the worst value of key ('max' or 'min' is best)."""
    return sorted(rows, key=lambda row: row[key], reverse=mode == "max")
