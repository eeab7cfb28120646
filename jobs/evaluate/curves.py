"""Classification plots: ROC and precision-recall curves, the confusion matrix, calibration
and score distributions. Scores arrive as one probability column per class; a binary
model's curves are drawn for its positive class, a multiclass one's one-vs-rest per class."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from mlbatch_jobs.evaluate.plots import Plot, new_figure, png

MAX_CURVES = 10  # classes drawn one-vs-rest; more would be unreadable


def _drawn(y: np.ndarray, labels: list[str]) -> list[int]:
    """The classes to draw: binary's positive class; else those present, most common first."""
    if len(labels) == 2:
        return [1] if 0 < (y == 1).sum() < len(y) else []
    present = [
        k for k in np.argsort(-np.bincount(y, minlength=len(labels))) if 0 < (y == k).sum() < len(y)
    ]
    return [int(k) for k in present[:MAX_CURVES]]


def roc_plot(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Plot:
    figure, axes = new_figure()
    for k in _drawn(y, labels):
        false_positive, true_positive, _ = roc_curve(y == k, scores[:, k])
        area = auc(false_positive, true_positive)
        axes.plot(false_positive, true_positive, label=f"{_name(k, labels)} (AUC {area:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="lower right", fontsize="small")
    return Plot("roc_curve", "ROC curve (test split)", png(figure))


def pr_plot(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Plot:
    figure, axes = new_figure()
    for k in _drawn(y, labels):
        precision, recall, _ = precision_recall_curve(y == k, scores[:, k])
        area = average_precision_score(y == k, scores[:, k])
        line = axes.step(
            recall, precision, where="post", label=f"{_name(k, labels)} (AP {area:.3f})"
        )
        axes.axhline(np.mean(y == k), linestyle=":", color=line[0].get_color())  # chance level
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper right", fontsize="small")
    return Plot("pr_curve", "Precision-recall curve (test split; dotted: chance)", png(figure))


def confusion_plot(
    y: np.ndarray, predicted: np.ndarray, labels: list[str], threshold: float | None
) -> Plot:
    counts = np.bincount(y * len(labels) + predicted, minlength=len(labels) ** 2)
    counts = counts.reshape(len(labels), len(labels))
    size = 2.5 + 0.5 * len(labels)
    figure, axes = new_figure(width=size + 1, height=size)
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set(xlabel="predicted", ylabel="actual")
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if dark else "black")  # fmt: skip
    title = "Confusion matrix (test split"
    title += f", threshold {threshold:.3f})" if threshold is not None else ")"
    return Plot("confusion_matrix", title, png(figure))


def calibration_plot(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Plot:
    figure, axes = new_figure()
    for k in _drawn(y, labels):
        observed, predicted = calibration_curve(
            y == k, scores[:, k], n_bins=10, strategy="quantile"
        )
        axes.plot(predicted, observed, marker="o", markersize=3, label=_name(k, labels))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.set(xlabel="mean predicted probability", ylabel="observed share", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left", fontsize="small")
    return Plot("calibration", "Calibration (test split, deciles of the score)", png(figure))


def score_plot(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Plot:
    """For each drawn class, its probability among the rows of that class and the others."""
    drawn = _drawn(y, labels)
    figure = _grid(len(drawn))
    bins = np.linspace(0, 1, 31)
    for axes, k in zip(figure.axes, drawn, strict=False):
        axes.hist(
            scores[y == k, k], bins=bins, alpha=0.6, density=True, label=f"actual {labels[k]}"
        )
        others = f"actual {labels[0]}" if len(labels) == 2 else "others"
        axes.hist(scores[y != k, k], bins=bins, alpha=0.6, density=True, label=others)
        axes.set(xlabel=f"P({labels[k]})", ylabel="density")
        axes.legend(fontsize="small")
    return Plot(
        "score_distribution", "Score distributions by actual class (test split)", png(figure)
    )


def _grid(panels: int):
    from matplotlib.figure import Figure

    columns = min(max(panels, 1), 3)
    rows = max(1, -(-panels // columns))
    figure = Figure(figsize=(4 * columns, 3.2 * rows))
    figure.subplots(rows, columns, squeeze=False)
    for extra in figure.axes[panels:]:
        extra.set_visible(False)
    return figure


def _name(k: int, labels: list[str]) -> str:
    return labels[k] if len(labels) > 2 else f"positive class {labels[k]}"
