"""The explore report's analysis sections: column advice, predictive power, relations,
outliers and top categories. Every name and value is escaped, as in report.py."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

ACTION_ORDER = {"drop": 0, "flag": 1}


def advice_section(advice: Mapping[str, Any]) -> str:
    """Drops and flags, each with every reason found, drops first."""
    advised = [(c, e) for c, e in advice["columns"].items() if e["action"] in ACTION_ORDER]
    if not advised:
        return "<h2>Column advice</h2>\n<p>Nothing to drop or flag.</p>"
    advised.sort(key=lambda item: ACTION_ORDER[item[1]["action"]])
    rows = []
    for column, entry in advised:
        reasons = "".join(
            f"<li><strong>{escape(r['check'].replace('_', ' '))}</strong>: "
            f"{escape(r['message'])}</li>"
            for r in entry["reasons"]
        )
        treat = " (used as a categorical)" if entry.get("treat_as") else ""
        rows.append(
            f'<tr class="{entry["action"]}"><td><code>{escape(column)}</code></td>'
            f"<td>{entry['action']}{treat}</td><td><ul>{reasons}</ul></td></tr>"
        )
    counts = f"{len(advice['drop'])} to drop, {len(advice['flag'])} flagged"
    return (
        f"<h2>Column advice</h2>\n<p>{counts}. The features stage applies the drops unless "
        "the spec keeps a column (<code>features.keep</code>); the same advice is in "
        "<code>advice.json</code>.</p>\n<table><tr><th>column</th><th>advice</th><th>why</th>"
        "</tr>\n" + "\n".join(rows) + "</table>"
    )


def power_section(advice: Mapping[str, Any], chart: str | None) -> str:
    threshold = advice["thresholds"]["leak_r2" if advice["task"] == "regression" else "leak_auc"]
    return (
        "<h2>Single-column predictive power</h2>\n"
        f"<p>How well each column alone predicts the target ({escape(advice['power_metric'])}, "
        f"learned on one half of a sample of {advice['sample_rows']:,} rows and scored on the "
        f"other, then swapped). Above {threshold} a column is a suspected leak.</p>\n"
        + image(chart, "single-column power of each column")
    )


def relations_section(charts: Mapping[str, str], relations: Mapping[str, Any]) -> str:
    parts = ["<h2>Relations between columns</h2>"]
    if "correlation" in charts:
        parts.append(
            "<p>Spearman correlation of numeric columns (the most predictive first). Pairs "
            "near ±1 carry the same information twice.</p>"
            + image(charts["correlation"], "correlation heatmap")
        )
    if "association" in charts:
        parts.append(
            "<p>Cramér's V between categorical columns with at most 50 values (the target "
            "included for classification): 0 is independent, 1 is one determines the other.</p>"
            + image(charts["association"], "association heatmap")
        )
    if "missing_together" in charts:
        parts.append(
            "<p>Which columns are missing together (correlation of their was-missing "
            "indicators): blocks usually share a cause, such as a failed join.</p>"
            + image(charts["missing_together"], "columns missing together")
        )
    if "by_target" in charts:
        parts.append(
            "<h3>The target against each column</h3><p>Per bin (numbers, dates) or top "
            "category; the dashed line is the overall level.</p>"
            + image(charts["by_target"], "the target against each column")
        )
    return "\n".join(parts) if len(parts) > 1 else ""


def outliers_section(found: list[Mapping[str, Any]], chart: str | None) -> str:
    flagged = [f for f in found if f["iqr"] or f["z"]]
    if not flagged:
        return "<h2>Outliers</h2>\n<p>No numeric column has values beyond its IQR fences.</p>"
    rows = "".join(
        f"<tr><td><code>{escape(f['column'])}</code></td>"
        f'<td class="n">{f["iqr"]:,}</td><td class="n">{f["iqr_share"]:.1%}</td>'
        f'<td class="n">{f["z"]:,}</td><td class="n">{f["z_share"]:.1%}</td>'
        f'<td class="n">{f["low"]:.4g} – {f["high"]:.4g}</td></tr>'
        for f in flagged
    )
    return (
        "<h2>Outliers</h2>\n<p>Values outside Q1 − 1.5·IQR … Q3 + 1.5·IQR, and values more than "
        "3 standard deviations from the mean, in the sample. Skewed columns have many by the "
        "IQR rule without any being wrong; the features stage imputes them with the median.</p>"
        "<table><tr><th>column</th><th>IQR</th><th>share</th><th>|z| &gt; 3</th><th>share</th>"
        f"<th>fences</th></tr>{rows}</table>\n" + image(chart, "outlier shares")
    )


def categories_section(chart: str | None) -> str:
    if chart is None:
        return ""
    return (
        "<h2>Top categories</h2>\n<p>The most frequent values of each categorical column "
        "(shares of the rows that have a value; every row counted).</p>\n"
        + image(chart, "top categories")
    )


def notebook_section(notebook: bool) -> str:
    if not notebook:
        return ""
    return (
        "<h2>Notebook</h2>\n<p><code>notebook.ipynb</code>, next to this report, loads this "
        "run's ETL output from storage and reproduces these tables and plots, with notes on "
        "each finding. It was executed when the report was made; open it to re-run or "
        "extend the analysis.</p>"
    )


def image(uri: str | None, alt: str) -> str:
    if uri is None:
        return ""
    return f'<p><img src="{escape(uri)}" alt="{escape(alt)}"></p>'
