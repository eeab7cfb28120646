"""Test-set metrics per task, and the binary decision threshold.

Metrics that need a predicted class use the chosen threshold (binary) or the most probable
class (multiclass, macro-averaged over the classes). Counting metrics are plain numpy, so
the bootstrap can afford hundreds of resamples; the curve areas come from scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from mlbatch.spec.evaluate import TASK_METRICS
from mlbatch.thresholds import best_f1

EPSILON = 1e-15  # probabilities are clipped to [EPSILON, 1 - EPSILON] for the log loss


def compute_metrics(
    task: str, y: np.ndarray, scores: np.ndarray, *, num_classes: int, threshold: float = 0.5
) -> dict[str, float]:
    """The task's metrics of scores (probabilities or values) against y. A metric the rows
    cannot define (an AUC over one class, MAPE with a zero target) is left out."""
    if task == "regression":
        return regression_metrics(y.astype("float64"), scores)
    if task == "binary":
        probabilities = np.column_stack([1 - scores, scores])
        predicted = (scores >= threshold).astype(int)
        metrics = {
            "roc_auc": _defined(roc_auc_score, y, scores),
            "pr_auc": _defined(average_precision_score, y, scores),
        }
        counts = _confusion(y, predicted, 2)
        precision, recall, f1 = _precision_recall_f1(counts)
        metrics.update(precision=precision[1], recall=recall[1], f1=f1[1])
    else:
        probabilities = scores
        predicted = scores.argmax(axis=1)
        present = [k for k in range(num_classes) if 0 < (y == k).sum() < len(y)]
        one_vs_rest = [((y == k).astype(int), scores[:, k]) for k in present]
        metrics = {
            "roc_auc": _mean([_defined(roc_auc_score, t, s) for t, s in one_vs_rest]),
            "pr_auc": _mean([_defined(average_precision_score, t, s) for t, s in one_vs_rest]),
        }
        counts = _confusion(y, predicted, num_classes)
        precision, recall, f1 = _precision_recall_f1(counts)
        metrics.update(precision=precision.mean(), recall=recall.mean(), f1=f1.mean())
    onehot = np.eye(probabilities.shape[1])[y]
    clipped = np.clip(probabilities, EPSILON, 1 - EPSILON)
    metrics["log_loss"] = -np.mean(np.log(clipped[np.arange(len(y)), y]))
    squared = (probabilities - onehot) ** 2
    # Binary Brier is the mean of (p - y)^2 for the positive class: half the summed form.
    metrics["brier"] = np.mean(squared[:, 1]) if task == "binary" else np.mean(squared.sum(axis=1))
    metrics["accuracy"] = np.mean(predicted == y)
    return {name: float(metrics[name]) for name in TASK_METRICS[task] if metrics[name] is not None}


def regression_metrics(y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    errors = predictions - y
    total = np.sum((y - y.mean()) ** 2)
    metrics = {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
    }
    if total > 0:
        metrics["r2"] = float(1 - np.sum(errors**2) / total)
    if np.all(y != 0):
        metrics["mape"] = float(np.mean(np.abs(errors / y)))
    return metrics


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float | None:
    """The probability threshold with the highest F1 (None when the rows hold one class)."""
    best = best_f1(y, scores)
    return None if best is None else best[0]


def _confusion(y: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[actual, predicted]."""
    flat = np.bincount(y * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _precision_recall_f1(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class; 0 where undefined (no predictions or no rows of the class)."""
    hits = np.diag(counts).astype("float64")
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return precision, recall, f1


def _defined(metric, y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(metric(y, scores)) if 0 < y.sum() < len(y) else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
