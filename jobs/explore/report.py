"""The explore report: one self-contained HTML page (inline CSS, plots as data URIs).

Everything that comes from the data or the spec (column names, values, labels, the run's
name) is escaped: a column called `<script>` is shown, never run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from mlbatch_jobs.explore import advice_report
from mlbatch_jobs.explore.sketch import STANDARD_ERROR
from mlbatch_jobs.explore.tally import EXACT_DISTINCT

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1em; }
.muted { color: #777; } img { max-width: 100%; }
tr.drop td:first-child { border-left: 4px solid #c44e52; }
tr.flag td:first-child { border-left: 4px solid #f0b400; }
td ul { margin: 0; padding-left: 1.2em; }
"""


def render_report(
    summary: Mapping[str, Any],
    plots: Mapping[str, str],
    *,
    title: str,
    advice: Mapping[str, Any] | None = None,
    relations: Mapping[str, Any] | None = None,
    notebook: bool = False,
) -> str:
    """The whole page; `plots` maps plot and chart names to data URIs (plots.render_plots,
    charts.render_charts). Advice and relations add their sections when given."""
    sections = [
        _overview(summary),
        advice and advice_report.advice_section(advice),
        _target(summary["target"], plots.get("target")),
        _not_features(summary["not_used_as_features"]),
        _columns(summary["column_summaries"]),
        _missing(plots.get("missing")),
        _distributions(summary, plots.get("distributions")),
        advice_report.categories_section(plots.get("categories"), _sampled_tops(summary)),
        advice and advice_report.power_section(advice, plots.get("power")),
        relations and advice_report.relations_section(plots, relations),
        relations and advice_report.outliers_section(relations["outliers"], plots.get("outliers")),
        _lineage(summary.get("lineage") or {}),
        advice_report.notebook_section(notebook),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n"
    )


def _overview(summary: Mapping[str, Any]) -> str:
    rows = [
        ("rows", _count(summary["rows"])),
        ("columns", _count(summary["columns"])),
        ("missing cells", _count(summary["missing_cells"])),
        ("missing share", _share(summary["missing_share"])),
    ]
    cells = "".join(f'<tr><th>{name}</th><td class="n">{value}</td></tr>' for name, value in rows)
    return f"<h2>Overview</h2>\n<table>{cells}</table>"


def _target(target: Mapping[str, Any], plot: str | None) -> str:
    name = escape(str(target["name"]))
    head = (
        f"<h2>Target: <code>{name}</code> ({escape(target['task'])})</h2>\n"
        f"<p>{_count(target['missing'])} rows have no target.</p>"
    )
    if target["task"] == "regression":
        stats = "".join(
            f'<tr><th>{key}</th><td class="n">{_number(target[key])}</td></tr>'
            for key in ("min", "median", "mean", "std", "max")
        )
        body = f"<table>{stats}</table>"
    else:
        rows = "".join(
            f'<tr><td>{escape(str(c["value"]))}</td><td class="n">{_count(c["count"])}</td>'
            f'<td class="n">{_share(c["share"])}</td></tr>'
            for c in target["classes"]
        )
        body = (
            "<table><tr><th>class</th><th>rows</th><th>share</th></tr>"
            f"{rows}</table>\n<p>Minority class share: "
            f"{_share(target['minority_class_share'])}.</p>"
        )
    return "\n".join([head, body, advice_report.image(plot, f"balance of {target['name']}")])


def _not_features(groups: Mapping[str, list[str]]) -> str:
    def names(columns: list[str]) -> str:
        return ", ".join(f"<code>{escape(c)}</code>" for c in columns) or "none"

    items = [
        f"<li>Known only after the time of prediction: {names(groups['known_after_prediction'])}"
        "</li>",
        f"<li>Identifiers: {names(groups['id_columns'])}</li>",
    ]
    if groups["not_in_table"]:
        items.append(
            f"<li>Named in the spec but not in the table: {names(groups['not_in_table'])}</li>"
        )
    return (
        '<h2>Not used as features</h2>\n<div class="note"><p>These columns, and the target, '
        "are <strong>not used as features</strong>:</p><ul>" + "".join(items) + "</ul></div>"
    )


def _columns(columns: list[Mapping[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("column", "dtype", "role", "missing", "distinct", "min / top", "max", "mean")
    )
    rows, notes = [], []
    for c in columns:
        estimated = c.get("estimated")
        if estimated:
            notes.append(estimated["top_count_sample_rows"])
        if c["kind"] in ("numeric", "datetime"):
            low, high = _number(c["min"]), _number(c["max"])
        elif c["top"] is not None:
            count = f'<span class="muted">×{c["top_count"]:,}{"*" if estimated else ""}</span>'
            low, high = f"{escape(str(c['top']))} {count}", ""
        else:
            low, high = "", ""
        distinct = "" if c["distinct"] is None else _count(c["distinct"])
        if estimated and distinct:
            distinct = f"≈{distinct}*"
        rows.append(
            f"<tr><td><code>{escape(c['name'])}</code></td><td>{escape(str(c['dtype']))}</td>"
            f'<td>{escape(c["role"])}</td><td class="n">{_share(c["missing_share"])}</td>'
            f'<td class="n">{distinct}</td><td>{low}</td><td>{high}</td>'
            f'<td class="n">{_number(c["mean"])}</td></tr>'
        )
    note = (
        f'<p class="muted">* Columns with more than {EXACT_DISTINCT:,} distinct values: the '
        "distinct count is a HyperLogLog estimate over every row (about "
        f"{STANDARD_ERROR:.1%} standard error); the top value is counted on a random sample "
        f"of {max(notes):,} rows. Every other number is exact over every row.</p>"
        if notes else ""
    )  # fmt: skip
    return f"<h2>Columns</h2>\n<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>" + note


def _sampled_tops(summary: Mapping[str, Any]) -> dict[str, int]:
    """Drawn categorical columns whose top values come from the sample: their rows."""
    estimated = summary.get("estimated") or {}
    return {
        name: estimated[name]["top_values_sample_rows"]
        for name in summary.get("top_categories", {}) if name in estimated
    }  # fmt: skip


def _missing(plot: str | None) -> str:
    if plot is None:
        return "<h2>Missing values</h2>\n<p>No column has missing values.</p>"
    return "<h2>Missing values</h2>\n" + advice_report.image(plot, "missing share by column")


def _distributions(summary: Mapping[str, Any], plot: str | None) -> str:
    if plot is None:
        return ""
    sample = summary["sample"]
    note = (
        "every row" if sample["rows"] == summary["rows"]
        else f"a random sample of {_count(sample['rows'])} rows (seed {sample['seed']})"
    )  # fmt: skip
    return (
        "<h2>Numeric distributions</h2>\n"
        f'<p class="muted">Histograms of {note}; candidate features first, then columns known '
        "only after prediction (identifiers and the target are left out).</p>\n"
        + advice_report.image(plot, "distributions of numeric columns")
    )


def _lineage(lineage: Mapping[str, Any]) -> str:
    if not lineage:
        return ""
    items = "".join(
        f"<li><code>{escape(str(column))}</code>: "
        f"{escape(origin if isinstance(origin, str) else json.dumps(origin))}</li>"
        for column, origin in lineage.items()
    )
    return f"<h2>Derived columns</h2>\n<ul>{items}</ul>"


def _count(value: int) -> str:
    return f"{value:,}"


def _share(value: float | None) -> str:
    if value is None:
        return ""
    if 0 < value < 0.001:  # a few missing values must not read as none
        return "&lt;0.1%"
    return f"{value:.1%}"


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)  # a value, not a count: no thousands separators (years, codes)
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))
