"""The evaluation plots, as PNG bytes: ROC curve, confusion matrix, predicted against actual.

Figures are drawn on matplotlib's Figure directly, never through pyplot, so nothing needs
a display and no global figure state outlives a call; PNGs render with Agg.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, confusion_matrix, roc_curve

MAX_POINTS = 5000  # a scatter of more points says no more and bloats the report


@dataclass(frozen=True)
class Plot:
    name: str  # file stem under plots/
    title: str
    png: bytes


def task_plots(task: str, y: np.ndarray, predictions: np.ndarray, classes: list | None) -> list:
    """The plots that fit the task."""
    if task == "binary":
        return [roc_plot(y, predictions)] if len(np.unique(y)) == 2 else []
    if task == "multiclass":
        return [confusion_plot(y, predictions.argmax(axis=1), [str(c) for c in classes])]
    return [predicted_vs_actual_plot(y, predictions)]


def roc_plot(y: np.ndarray, probabilities: np.ndarray) -> Plot:
    false_positive, true_positive, _ = roc_curve(y, probabilities)
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    area = auc(false_positive, true_positive)
    axes.plot(false_positive, true_positive, label=f"model (AUC {area:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="lower right")
    return Plot("roc_curve", "ROC curve (test split)", png(figure))


def confusion_plot(y: np.ndarray, predicted: np.ndarray, classes: list[str]) -> Plot:
    counts = confusion_matrix(y, predicted, labels=list(range(len(classes))))
    size = 2.5 + 0.5 * len(classes)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes, rotation=45, ha="right")
    axes.set_yticks(ticks, classes)
    axes.set(xlabel="predicted", ylabel="actual")
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if dark else "black")  # fmt: skip
    return Plot("confusion_matrix", "Confusion matrix (test split)", png(figure))


def predicted_vs_actual_plot(y: np.ndarray, predictions: np.ndarray) -> Plot:
    if len(y) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(y), MAX_POINTS, replace=False)
        y, predictions = y[keep], predictions[keep]
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    axes.scatter(y, predictions, s=8, alpha=0.4)
    low, high = float(min(y.min(), predictions.min())), float(max(y.max(), predictions.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    axes.set(xlabel="actual", ylabel="predicted")
    axes.legend(loc="upper left")
    return Plot("predicted_vs_actual", "Predicted against actual (test split)", png(figure))


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
