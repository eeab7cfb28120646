"""The explore report's plots, drawn from summary.json's numbers as PNG data URIs.

Figures are built with `matplotlib.figure.Figure`, never pyplot: no global state, no
display, the Agg canvas. Column names are user data, so mathtext is off (a name like
`$x$` is drawn as written instead of being parsed, or failing to parse).
Import this module only after MPLCONFIGDIR points somewhere writable: matplotlib reads
it on import.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

MAX_BARS = 30  # classes or columns in one bar chart
MAX_LABEL = 40  # characters of a tick label
COLOR = "#4c72b0"


def render_plots(summary: Mapping[str, Any]) -> dict[str, str]:
    """name -> data URI for each plot the summary has data for."""
    target = summary["target"]
    plots: dict[str, str | None] = {}
    with matplotlib.rc_context({"text.parse_math": False}):
        if target["task"] == "regression":
            plots["target"] = histogram_plot(
                target["histogram"], title=f"{target['name']} (every row)", xlabel=target["name"]
            )
        else:
            plots["target"] = class_balance_plot(target["classes"], target=target["name"])
        plots["missing"] = missingness_plot(summary["column_summaries"])
        plots["distributions"] = distributions_plot(summary["distributions"])
    return {name: uri for name, uri in plots.items() if uri is not None}


def class_balance_plot(classes: list[dict], *, target: str) -> str | None:
    """Horizontal bars of class shares, the most frequent class on top."""
    if not classes:
        return None
    shown = classes[:MAX_BARS]
    fig = Figure(figsize=(6.4, 0.8 + 0.3 * len(shown)))
    ax = fig.subplots()
    more = f" (top {MAX_BARS} of {len(classes)})" if len(classes) > MAX_BARS else ""
    _share_bars(
        ax, [short_label(c["value"]) for c in shown], [c["share"] for c in shown],
        color=COLOR, xlabel="share of rows with a target",
        title=f"{short_label(target)}: class balance{more}",
    )  # fmt: skip
    return data_uri(fig)


def histogram_plot(histogram: Mapping[str, list], *, title: str, xlabel: str) -> str | None:
    if not histogram["counts"]:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    _draw_histogram(ax, histogram)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    return data_uri(fig)


def missingness_plot(columns: list[dict]) -> str | None:
    """Missing share of each column that has missing values, the worst on top."""
    missing = sorted((c for c in columns if c["missing"]), key=lambda c: -c["missing_share"])
    if not missing:
        return None
    shown = missing[:MAX_BARS]
    fig = Figure(figsize=(6.4, 0.8 + 0.3 * len(shown)))
    ax = fig.subplots()
    more = f" (worst {MAX_BARS} of {len(missing)})" if len(missing) > MAX_BARS else ""
    _share_bars(
        ax, [short_label(c["name"]) for c in shown], [c["missing_share"] for c in shown],
        color="#dd8452", xlabel="share of rows missing",
        title=f"Columns with missing values{more}",
    )  # fmt: skip
    return data_uri(fig)


def distributions_plot(distributions: Mapping[str, Mapping[str, list]]) -> str | None:
    """A grid of histograms, one per numeric column (counts are rows of the sample)."""
    drawn = {name: h for name, h in distributions.items() if h["counts"]}
    if not drawn:
        return None
    columns = min(3, len(drawn))
    rows = -(-len(drawn) // columns)
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, (name, histogram) in zip(axes, drawn.items(), strict=False):
        _draw_histogram(ax, histogram)
        ax.set_title(short_label(name), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(drawn) :]:
        ax.set_visible(False)
    return data_uri(fig)


def data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    # A constrained layout already fits the labels; "tight" would measure every text again
    # (a third of a 30-panel grid's time).
    tight = "tight" if fig.get_layout_engine() is None else None
    fig.savefig(buffer, format="png", dpi=96, bbox_inches=tight)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _share_bars(ax, labels: list[str], shares: list[float], *, color, xlabel, title) -> None:
    """Horizontal bars, the first on top, each labelled with its share."""
    ax.barh(range(len(shares)), shares, color=color)
    ax.set_yticks(range(len(shares)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.0, max(shares) * 1.2))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for y, share in enumerate(shares):
        ax.annotate(
            f"{share:.1%}", (share, y), xytext=(3, 0), textcoords="offset points",
            va="center", fontsize=8,
        )  # fmt: skip


def _draw_histogram(ax, histogram: Mapping[str, list]) -> None:
    ax.stairs(histogram["counts"], histogram["edges"], fill=True, color=COLOR)


def short_label(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
