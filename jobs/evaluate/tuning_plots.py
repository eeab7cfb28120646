"""Plots of the tuning trials in train's trials.parquet: the search's progress, and learning
curves (training and validation metric by boosting round or tree)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlbatch_jobs.evaluate.plots import Plot, new_figure, png


def tuning_plots(trials: pd.DataFrame, *, metric: str, mode: str, best: dict[str, str]) -> list:
    """The plots trials.parquet supports; best: family -> its best trial's id."""
    plots = []
    scored = trials[trials[metric].notna()] if metric in trials else trials.iloc[:0]
    if len(scored):
        plots.append(search_plot(scored, metric=metric, mode=mode))
    curves = learning_curves_plot(trials, metric=metric, best=best)
    if curves is not None:
        plots.append(curves)
    return plots


def search_plot(trials: pd.DataFrame, *, metric: str, mode: str) -> Plot:
    """Each trial's validation score in the order the trials ran, with the best so far."""
    figure, axes = new_figure(width=7)
    order = np.arange(1, len(trials) + 1)
    for family in sorted(trials["family"].unique()):
        mine = (trials["family"] == family).to_numpy()
        axes.scatter(order[mine], trials[metric].to_numpy()[mine], s=18, label=family)
    values = trials[metric].to_numpy(dtype="float64")
    running = np.maximum.accumulate(values) if mode == "max" else np.minimum.accumulate(values)
    axes.step(order, running, where="post", color="black", label="best so far")
    axes.set(xlabel="trial", ylabel=f"validation {metric}")
    axes.legend(loc="best", fontsize="small")
    return Plot("tuning_trials", f"Tuning trials: validation {metric} by trial", png(figure))


def learning_curves_plot(trials: pd.DataFrame, *, metric: str, best: dict[str, str]) -> Plot | None:
    """Per family: every trial's validation curve (faint) and the best trial's training and
    validation curves; a gap that keeps growing is overfitting."""
    if "curve_valid" not in trials:
        return None
    with_curves = trials[trials["curve_valid"].map(lambda c: c is not None and len(c) > 1)]
    families = sorted(with_curves["family"].unique())
    if not families:
        return None
    figure = Figure(figsize=(4.6 * min(len(families), 3), 3.6 * -(-len(families) // 3)))
    grid = figure.subplots(-(-len(families) // 3), min(len(families), 3), squeeze=False)
    for axes in grid.flat[len(families) :]:
        axes.set_visible(False)
    for axes, family in zip(grid.flat, families, strict=False):
        mine = with_curves[with_curves["family"] == family]
        for _, trial in mine.iterrows():
            axes.plot(trial["curve_rounds"], trial["curve_valid"], color="grey", alpha=0.25)
        chosen = mine[mine["trial_id"] == best.get(family)]
        for _, trial in chosen.iterrows():
            axes.plot(trial["curve_rounds"], trial["curve_valid"], color="tab:blue", label="valid")
            if trial.get("curve_train") is not None and len(trial["curve_train"]):
                axes.plot(trial["curve_rounds"], trial["curve_train"], color="tab:orange",
                          linestyle="--", label="train")  # fmt: skip
        axes.set(title=family, xlabel="round", ylabel=metric)
        if len(chosen):
            axes.legend(fontsize="small")
    title = "Learning curves of the tuning trials (best trial in colour, the others grey)"
    return Plot("learning_curves", title, png(figure))
