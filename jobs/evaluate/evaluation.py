"""The numbers of an evaluation: the threshold, test metrics with bootstrap intervals, and
feature importance, for one model on prepared splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlbatch.scoring import TrainedModel
from mlbatch.spec.evaluate import METRIC_MODES, EvaluateSpec
from mlbatch_jobs.evaluate.bootstrap import bootstrap_intervals
from mlbatch_jobs.evaluate.importance import model_importance, permutation_importance
from mlbatch_jobs.evaluate.metrics import best_f1_threshold, compute_metrics

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Evaluation:
    task: str
    num_classes: int
    scores: np.ndarray  # test predictions: probabilities or values
    threshold: dict | None  # binary: {value, rule, valid_f1}
    metrics: dict[str, float]
    intervals: dict[str, list[float]]
    importance: dict[str, float]  # the model's own, of the kind importance_kind names
    importance_kind: str
    permutation: dict[str, dict[str, float]]
    permutation_metric: str


def evaluate_model(
    model: TrainedModel, *, spec: EvaluateSpec, x_test: np.ndarray, y_test: np.ndarray,
    x_valid: np.ndarray, y_valid: np.ndarray, primary: str,
) -> Evaluation:  # fmt: skip
    """Everything evaluate measures; `primary` is the metric permutation importance uses."""
    task = model.info["task"]
    num_classes = len(model.info.get("classes") or ())
    scores = model.predict(x_test)
    threshold = None
    if task == "binary":
        trained = model.info.get("threshold")
        # A model refit on train + valid has seen the validation rows: its predictions on
        # them flatter it, so train's threshold, from the predictions before the refit.
        if spec.threshold == "f1" and trained and model.info.get("refit"):
            threshold = trained
        else:
            threshold = choose_threshold(spec, y_valid, model.predict(x_valid))
    cut = threshold["value"] if threshold else DEFAULT_THRESHOLD

    def metrics_of(y: np.ndarray, predicted: np.ndarray) -> dict:
        return compute_metrics(task, y, predicted, num_classes=num_classes, threshold=cut)

    metrics = metrics_of(y_test, scores)
    intervals = bootstrap_intervals(
        lambda rows: metrics_of(y_test[rows], scores[rows]), len(y_test),
        samples=spec.bootstrap, confidence=spec.confidence, seed=spec.seed,
        max_rows=spec.bootstrap_rows, full=metrics,
    )  # fmt: skip
    importance, importance_kind = model_importance(model)
    permutation = permutation_importance(
        lambda x, y: metrics_of(y, model.predict(x)).get(primary), x_test, y_test,
        features=model.info["features"], higher_is_better=METRIC_MODES[primary] == "max",
        repeats=spec.permutation_repeats, seed=spec.seed, order=list(importance) or None,
    )  # fmt: skip
    return Evaluation(task, num_classes, scores, threshold, metrics, intervals, importance,
                      importance_kind, permutation, primary)  # fmt: skip


def choose_threshold(spec: EvaluateSpec, y_valid: np.ndarray, valid_scores: np.ndarray) -> dict:
    """The spec's threshold, or the one maximising F1 on the validation split."""
    if spec.threshold != "f1":
        return {"value": float(spec.threshold), "rule": "spec"}
    best = best_f1_threshold(y_valid, valid_scores)
    if best is None:
        return {
            "value": DEFAULT_THRESHOLD,
            "rule": "default (the validation split holds one class)",
        }
    f1 = compute_metrics("binary", y_valid, valid_scores, num_classes=2, threshold=best)["f1"]
    return {"value": best, "rule": "best F1 on the validation split", "valid_f1": f1}
