"""The evaluation plots, as PNG bytes: which ones a task gets, the regression plots and
feature importance (classification curves are in curves.py, the tuning trials' in
tuning_plots.py).

Figures are drawn on matplotlib's Figure directly, never through pyplot, so nothing needs
a display and no global figure state outlives a call; PNGs render with Agg.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

MAX_POINTS = 5000  # a scatter of more points says no more and bloats the report
TOP_FEATURES = 20


@dataclass(frozen=True)
class Plot:
    name: str  # file stem under plots/
    title: str
    png: bytes


def all_plots(result, y: np.ndarray, *, classes: list | None, tuning: list[Plot]) -> list[Plot]:
    """Every plot of an Evaluation: the task's, importance, then the tuning plots."""
    threshold = result.threshold["value"] if result.threshold else 0.5
    plots = task_plots(result.task, y, result.scores, classes=classes, threshold=threshold)
    if result.importance:
        plots.append(gain_plot(result.importance, result.importance_kind))
    if result.permutation:
        plots.append(permutation_plot(result.permutation, result.permutation_metric))
    return [*plots, *tuning]


def task_plots(
    task: str, y: np.ndarray, scores: np.ndarray, *, classes: list | None, threshold: float
) -> list[Plot]:
    """The plots of the test predictions that fit the task."""
    from mlbatch_jobs.evaluate import curves

    if task == "regression":
        return [predicted_vs_actual_plot(y, scores), residuals_plot(y, scores)]
    labels = [str(c) for c in classes]
    if task == "binary":
        predicted = (scores >= threshold).astype(int)
        scores = np.column_stack([1 - scores, scores])
    else:
        predicted = scores.argmax(axis=1)
    return [
        curves.roc_plot(y, scores, labels), curves.pr_plot(y, scores, labels),
        curves.confusion_plot(y, predicted, labels, threshold if task == "binary" else None),
        curves.calibration_plot(y, scores, labels), curves.score_plot(y, scores, labels),
    ]  # fmt: skip


def predicted_vs_actual_plot(y: np.ndarray, predictions: np.ndarray) -> Plot:
    y, predictions = _sample(y, predictions)
    figure, axes = new_figure()
    axes.scatter(y, predictions, s=8, alpha=0.4)
    low, high = float(min(y.min(), predictions.min())), float(max(y.max(), predictions.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    axes.set(xlabel="actual", ylabel="predicted")
    axes.legend(loc="upper left")
    return Plot("predicted_vs_actual", "Predicted against actual (test split)", png(figure))


def residuals_plot(y: np.ndarray, predictions: np.ndarray) -> Plot:
    residuals = y - predictions
    figure = Figure(figsize=(9, 4))
    left, right = figure.subplots(1, 2)
    shown_predictions, shown_residuals = _sample(predictions, residuals)
    left.scatter(shown_predictions, shown_residuals, s=8, alpha=0.4)
    left.axhline(0, linestyle="--", color="grey")
    left.set(xlabel="predicted", ylabel="actual - predicted", title="residuals by prediction")
    right.hist(residuals, bins=40, color="tab:blue", alpha=0.8)
    right.axvline(0, linestyle="--", color="grey")
    right.set(xlabel="actual - predicted", ylabel="rows", title="residual distribution")
    return Plot("residuals", "Residuals (test split)", png(figure))


def gain_plot(importance: dict[str, float], kind: str) -> Plot:
    top = list(importance.items())[:TOP_FEATURES]
    figure, axes = new_figure(height=1.5 + 0.28 * len(top), width=7)
    axes.barh([name for name, _ in top][::-1], [share for _, share in top][::-1])
    axes.set(xlabel=f"share of the model's {kind}")
    return Plot("importance_gain", f"Feature importance (the model's {kind})", png(figure))


def permutation_plot(importance: dict[str, dict[str, float]], metric: str) -> Plot:
    top = list(importance.items())[:TOP_FEATURES][::-1]
    figure, axes = new_figure(height=1.5 + 0.28 * len(top), width=7)
    axes.barh([name for name, _ in top], [v["mean"] for _, v in top],
              xerr=[v["std"] for _, v in top], color="tab:orange")  # fmt: skip
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set(xlabel=f"{metric} lost when the feature is shuffled")
    return Plot("importance_permutation", "Permutation importance (test split)", png(figure))


def new_figure(*, width: float = 5.5, height: float = 4.5):
    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _sample(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(first) <= MAX_POINTS:
        return first, second
    keep = np.random.default_rng(0).choice(len(first), MAX_POINTS, replace=False)
    return first[keep], second[keep]
