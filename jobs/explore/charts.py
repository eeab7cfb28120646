"""The explore report's seaborn charts: relations, power, outliers, top categories.

Like plots.py: `matplotlib.figure.Figure` objects (no pyplot state), mathtext off, PNG data
URIs out. Import only after MPLCONFIGDIR points somewhere writable.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mlbatch_jobs.explore.plots import COLOR, MAX_BARS, data_uri, short_label

DROP_COLOR = "#c44e52"
GRID_COLUMNS = 3


def render_charts(
    summary: Mapping[str, Any], advice: Mapping[str, Any], relations: Mapping[str, Any]
) -> dict[str, str]:
    """name -> data URI for each chart there is data for."""
    charts: dict[str, str | None] = {}
    with matplotlib.rc_context({"text.parse_math": False}):
        charts["power"] = power_chart(advice)
        charts["correlation"] = matrix_chart(
            relations["correlation"], title="Spearman correlation", center=0.0, vmin=-1
        )
        charts["association"] = matrix_chart(
            relations["association"], title="Cramér's V", center=None, vmin=0
        )
        charts["missing_together"] = matrix_chart(
            relations["missing_together"], title="Missing together", center=0.0, vmin=-1
        )
        charts["by_target"] = target_grid(relations["by_target"], summary["target"])
        charts["outliers"] = outlier_chart(relations["outliers"])
        charts["categories"] = categories_grid(summary.get("top_categories") or {})
    return {name: uri for name, uri in charts.items() if uri is not None}


def power_chart(advice: Mapping[str, Any]) -> str | None:
    """Each column's single-column power, highest first; dropped columns in red."""
    scored = [(c, e["power"], e["action"]) for c, e in advice["columns"].items() if "power" in e]
    if not scored:
        return None
    scored.sort(key=lambda item: -item[1])
    shown = scored[:MAX_BARS]
    fig = Figure(figsize=(6.4, 0.8 + 0.28 * len(shown)))
    ax = fig.subplots()
    colors = [DROP_COLOR if action == "drop" else COLOR for _, _, action in shown]
    ax.barh(range(len(shown)), [value for _, value, _ in shown], color=colors)
    ax.set_yticks(range(len(shown)), [short_label(column) for column, _, _ in shown])
    ax.invert_yaxis()
    metric = advice["power_metric"]
    chance = 0.0 if metric == "r2" else 0.5
    ax.axvline(chance, color="#888", linewidth=0.8)
    threshold = advice["thresholds"]["leak_r2" if metric == "r2" else "leak_auc"]
    ax.axvline(threshold, color=DROP_COLOR, linestyle="--", linewidth=0.8)
    ax.set_xlim(min(chance, *(v for _, v, _ in shown)), 1.0)
    ax.set_xlabel(f"{metric} of the column alone (cross-fitted); red: advised dropped; "
                  "dashed: leak threshold")  # fmt: skip
    ax.set_title("Single-column predictive power")
    return data_uri(fig)


def matrix_chart(
    data: Mapping[str, Any], *, title: str, center: float | None, vmin: float
) -> str | None:
    columns = data["columns"]
    if len(columns) < 2:
        return None
    matrix = np.array(data["matrix"], dtype="float64")
    size = 1.5 + 0.32 * len(columns)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    labels = [short_label(c) for c in columns]
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib retires
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(
            matrix, ax=ax, vmin=vmin, vmax=1, center=center,
            cmap="vlag" if center == 0 else "mako_r", xticklabels=labels, yticklabels=labels,
            square=True, linewidths=0.3, annot=len(columns) <= 12, fmt=".2f",
            annot_kws={"fontsize": 7},
        )  # fmt: skip
    ax.tick_params(labelsize=7)
    ax.set_title(title)
    return data_uri(fig)


def target_grid(
    by_target: Mapping[str, Mapping[str, Any]], target: Mapping[str, Any]
) -> str | None:
    """Per column: the target's rate (binary), class shares (multiclass) or mean
    (regression) per bin or category, with the overall level as a dashed line."""
    if not by_target:
        return None
    rows = -(-len(by_target) // GRID_COLUMNS)
    columns = min(GRID_COLUMNS, len(by_target))
    fig = Figure(figsize=(3.6 * columns, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, (column, data) in zip(axes, by_target.items(), strict=False):
        _draw_relation(ax, data, target)
        ax.set_title(short_label(column), fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=6)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(by_target) :]:
        ax.set_visible(False)
    fig.suptitle(f"{short_label(target['name'])} against each of the most predictive columns")
    return data_uri(fig)


def _draw_relation(ax, data: Mapping[str, Any], target: Mapping[str, Any]) -> None:
    positions = np.arange(len(data["labels"]))
    if "mean" in data:
        ax.plot(positions, data["mean"], marker="o", color=COLOR)
        ax.axhline(target.get("mean") or 0.0, color="#888", linestyle="--", linewidth=0.8)
        ax.set_ylabel("mean", fontsize=7)
    else:
        shares = np.array(data["shares"], dtype="float64")
        if shares.shape[1] == 2:  # binary: the positive class's rate
            ax.bar(positions, shares[:, 1], color=COLOR)
            overall = target["classes"] and _share_of(target["classes"], data["classes"][1])
            ax.axhline(overall, color="#888", linestyle="--", linewidth=0.8)
            ax.set_ylabel(f"share {short_label(data['classes'][1])}", fontsize=7)
        else:
            bottom = np.zeros(len(positions))
            palette = sns.color_palette("deep", shares.shape[1])
            for j, label in enumerate(data["classes"]):
                ax.bar(positions, shares[:, j], bottom=bottom, color=palette[j], label=str(label))
                bottom += shares[:, j]
            ax.legend(fontsize=6)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xticks(positions, [short_label(label)[:16] for label in data["labels"]])


def _share_of(classes: list[dict], value: Any) -> float:
    return next((c["share"] for c in classes if c["value"] == value), 0.0)


def outlier_chart(found: list[Mapping[str, Any]]) -> str | None:
    """Share of rows outside the IQR fences and beyond |z| > 3, per numeric column."""
    shown = [f for f in found if f["iqr"] or f["z"]][:MAX_BARS]
    if not shown:
        return None
    fig = Figure(figsize=(6.4, 0.8 + 0.32 * len(shown)))
    ax = fig.subplots()
    positions = np.arange(len(shown))
    ax.barh(positions - 0.2, [f["iqr_share"] for f in shown], height=0.4, label="IQR × 1.5")
    ax.barh(positions + 0.2, [f["z_share"] for f in shown], height=0.4, label="|z| > 3")
    ax.set_yticks(positions, [short_label(f["column"]) for f in shown])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of the sample's rows")
    ax.set_title("Outliers")
    ax.legend(fontsize=8)
    return data_uri(fig)


def categories_grid(top: Mapping[str, list]) -> str | None:
    """Top values of each categorical column, as horizontal bars of their share."""
    drawn = {name: values for name, values in top.items() if values}
    if not drawn:
        return None
    columns = min(GRID_COLUMNS, len(drawn))
    rows = -(-len(drawn) // columns)
    fig = Figure(figsize=(3.6 * columns, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, (name, values) in zip(axes, drawn.items(), strict=False):
        ax.barh(range(len(values)), [v["share"] for v in values], color=COLOR)
        ax.set_yticks(range(len(values)), [short_label(v["value"])[:20] for v in values])
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(short_label(name), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(drawn) :]:
        ax.set_visible(False)
    return data_uri(fig)
