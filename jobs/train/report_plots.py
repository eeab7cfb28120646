"""The training report's plots, as PNG bytes: train-vs-valid curves, hyperparameter
importance, and each hyperparameter against the metric.

Figures are drawn on matplotlib's Figure directly, never through pyplot, so nothing needs
a display and no global figure state outlives a call.
"""

from __future__ import annotations

import io
import math

import pandas as pd
from matplotlib.figure import Figure


def curve_plot(family: str, trial: dict, metric: str, kept_round: int) -> bytes:
    """The best trial's metric round by round, on a training sample and on valid."""
    figure = Figure(figsize=(5.5, 3.6))
    axes = figure.subplots()
    rounds = trial["curve_rounds"]
    axes.plot(rounds, trial["curve_train"], label="train (sample)")
    axes.plot(rounds, trial["curve_valid"], label="valid")
    axes.axvline(kept_round, linestyle="--", color="grey", label=f"kept: {kept_round}")
    axes.set(xlabel="round" if family != "random_forest" else "trees", ylabel=metric,
             title=f"{family}: best trial")  # fmt: skip
    axes.legend(loc="best")
    return png(figure)


def importance_plot(family: str, shares: dict[str, float]) -> bytes:
    names = list(shares)[::-1]
    figure = Figure(figsize=(5.5, 0.4 * len(names) + 1.2))
    axes = figure.subplots()
    axes.barh(names, [shares[n] for n in names])
    axes.set(xlabel="share of the metric's variation explained", title=f"{family}")
    return png(figure)


def parameter_plots(family: str, table: pd.DataFrame, metric: str, names: list[str]) -> bytes:
    """One small scatter per hyperparameter: its value against the metric, trial by trial."""
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, name in zip(grid.flat, names, strict=False):
        values = table[name]
        if pd.api.types.is_numeric_dtype(values):
            axes.scatter(values, table[metric], s=14)
            if values.min() > 0 and values.max() / values.min() > 50:
                axes.set_xscale("log")  # ranges searched log-uniformly read better on log
        else:
            axes.scatter(values.astype(str), table[metric], s=14)
        axes.set(xlabel=name, ylabel=metric)
    for axes in list(grid.flat)[len(names) :]:
        axes.set_visible(False)
    figure.suptitle(f"{family}: each hyperparameter against {metric}")
    return png(figure)


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
