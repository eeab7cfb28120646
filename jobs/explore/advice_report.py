"""The explore report's analysis sections: column advice, predictive power, relations,
outliers and top categories. Every name and value is escaped, as in report.py."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from mlbatch_jobs.explore.tally import EXACT_DISTINCT

ACTION_ORDER = {"drop": 0, "flag": 1}


def advice_section(advice: Mapping[str, Any]) -> str:
    """Suspected leaks first, in a box of their own; then drops and flags, each with every
    reason found, drops first."""
    leaks = leaks_note(advice)
    advised = [(c, e) for c, e in advice["columns"].items() if e["action"] in ACTION_ORDER]
    if not advised:
        return "<h2>Column advice</h2>\n" + leaks + "<p>Nothing to drop or flag.</p>"
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
        f"<h2>Column advice</h2>\n{leaks}<p>{counts}. The features stage applies the drops unless "
        "the spec keeps a column (<code>features.keep</code>); the same advice is in "
        "<code>advice.json</code>.</p>\n<table><tr><th>column</th><th>advice</th><th>why</th>"
        "</tr>\n" + "\n".join(rows) + "</table>"
    )


def leaks_note(advice: Mapping[str, Any]) -> str:
    """The suspected leaks, loudly: a column that predicts the target this well alone is
    either the best feature of the table or a leak, and only a person can tell which."""
    leaks = advice.get("suspected_leaks") or []
    if not leaks:
        return ""
    kept = [leak for leak in leaks if leak["action"] != "drop"]
    items = "".join(
        f"<li><code>{escape(leak['column'])}</code>: {escape(leak['metric'])} "
        f"{leak['power']:.3f} alone ({'kept' if leak['action'] != 'drop' else 'dropped'})</li>"
        for leak in leaks
    )
    what = (
        "They are kept as features: check that each is known at the moment of prediction "
        "(if not, list it in <code>known_after_prediction</code>), or set "
        "<code>explore.drop_suspected_leaks: true</code>."
        if kept
        else "<code>explore.drop_suspected_leaks</code> is on: they are dropped."
    )
    return (
        f'<div class="note"><p><strong>{len(leaks)} suspected leak'
        f"{'s' if len(leaks) != 1 else ''}</strong>: alone, each predicts the target above "
        f"the threshold (on training rows).</p><ul>{items}</ul><p>{what}</p></div>\n"
    )


def power_section(advice: Mapping[str, Any], chart: str | None) -> str:
    threshold = advice["thresholds"]["leak_r2" if advice["task"] == "regression" else "leak_auc"]
    training = advice.get("training_rows", advice["sample_rows"])
    rows = (
        f"{training:,} training rows (the features split; valid and test rows are never looked at)"
        if not advice.get("unsplit")
        else f"{training:,} rows ({escape(advice['unsplit'])})"
    )
    return (
        "<h2>Single-column predictive power</h2>\n"
        f"<p>How well each column alone predicts the target ({escape(advice['power_metric'])}, "
        f"learned on one half of a sample of {advice['sample_rows']:,} of the {rows} and "
        f"scored on the other half, then swapped). Above {threshold} a column is flagged as "
        "a suspected leak.</p>\n" + image(chart, "single-column power of each column")
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


def categories_section(chart: str | None, sampled: Mapping[str, int] | None = None) -> str:
    """`sampled`: columns whose top values were counted on a sample, with its rows."""
    if chart is None:
        return ""
    counted = "every row counted"
    if sampled:
        names = ", ".join(f"<code>{escape(c)}</code>" for c in sampled)
        counted += (f", except {names}: more than {EXACT_DISTINCT:,} distinct values, counted "
                    f"on a random sample of {max(sampled.values()):,} rows")  # fmt: skip
    return (
        "<h2>Top categories</h2>\n<p>The most frequent values of each categorical column "
        f"(shares of the rows that have a value; {counted}).</p>\n" + image(chart, "top categories")
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
