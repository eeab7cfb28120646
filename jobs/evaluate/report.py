"""The evaluation report: one self-contained HTML page (plots embedded as base64 PNG, no
scripts, nothing fetched), from the run summary down to the model's parameters."""

from __future__ import annotations

import base64
import json
from html import escape

from mlbatch_jobs.evaluate.plots import Plot

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
.passed { color: #176f2c; font-weight: 600; } .failed { color: #b00020; font-weight: 600; }
.decision { border-left: 4px solid #888; padding: 0.2rem 1rem; background: #fafafa; }
img { max-width: 100%; }
"""


class Markup(str):
    """HTML this module wrote itself: placed in a cell as it is (everything else is escaped)."""


def render_report(
    *, title: str, summary: dict, gates: list[dict], decision: dict | None, metrics: dict,
    intervals: dict, interval_note: str, data: dict[str, dict], excluded: dict,
    leaderboard: dict | None, plots: list[Plot], params: dict, leaks: list[dict] | None = None,
) -> str:  # fmt: skip
    """The whole page as a string."""
    sections = [
        f"<h1>{escape(title)}</h1>",
        table(summary),
        leaks_block(leaks or []),
        "<h2>Decision</h2>",
        gates_table(gates) if gates else "<p>No quality gates in the spec.</p>",
        decision_block(decision),
        f"<h2>Test metrics ({escape(interval_note)})</h2>",
        metrics_table(metrics, intervals),
        "<h2>Data and features</h2>",
        *(f"<h3>{escape(name)}</h3>{table(values)}" for name, values in data.items() if values),
        "<h3>Columns not used as features</h3>",
        table(excluded) if excluded else "<p>None.</p>",
        "<h2>Leaderboard (validation split)</h2>",
        leaderboard_table(leaderboard) if leaderboard else "<p>Not available.</p>",
        *(figure(plot) for plot in plots),
        "<h2>Model parameters</h2>",
        table({name: json.dumps(value) for name, value in params.items()}),
    ]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def table(values: dict) -> str:
    body = "".join(
        f"<tr><th>{escape(str(name))}</th>{_cell(value)}</tr>" for name, value in values.items()
    )
    return f"<table>{body}</table>"


def rows_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def metrics_table(metrics: dict, intervals: dict) -> str:
    rows = [[name, value, *intervals.get(name, ["", ""])] for name, value in metrics.items()]
    return rows_table(["metric", "value", "low", "high"], rows)


def gates_table(gates: list[dict]) -> str:
    rows = [
        [g["gate"], "undefined" if g["value"] is None else g["value"],
         Markup('<span class="passed">passed</span>' if g["passed"]
                else '<span class="failed">failed</span>')]
        for g in gates
    ]  # fmt: skip
    return rows_table(["gate", "measured", "result"], rows)


def decision_block(decision: dict | None) -> str:
    if decision is None:
        return "<p>Not registered: the registry is off for this spec.</p>"
    shown = {k: v for k, v in decision.items() if v is not None}
    return (
        f'<div class="decision"><p><strong>{escape(decision["decision"])}</strong>: '
        f"{escape(decision['reason'])}</p>{table(shown)}</div>"
    )


def leaks_block(leaks: list[dict]) -> str:
    """Explore's suspected leaks among the model's inputs: loud, near the top, since a
    leak makes every metric below look better than the model will do."""
    if not leaks:
        return ""
    rows = [[leak["column"], f"{leak['metric']} {leak['power']:.3f}", leak["threshold"]]
            for leak in leaks]  # fmt: skip
    return (
        '<div class="decision" style="border-color:#b00020"><p><strong>Suspected leaks used '
        f"by this model ({len(leaks)})</strong>: alone, each of these columns predicts the "
        "target above explore's threshold on the training rows. If one is known only after "
        "the moment of prediction, these metrics overstate the model: list it in "
        "<code>known_after_prediction</code> (or set <code>explore.drop_suspected_leaks: "
        "true</code>) and run again.</p>"
        + rows_table(["column", "power alone", "threshold"], rows)
        + "</div>"
    )


def leaderboard_table(leaderboard: dict) -> str:
    """Each family's best trial: the score selection used, valid, CV and (read only) test."""
    metric = leaderboard["metric"]
    rows = [
        [entry["family"], entry.get(metric), entry.get("valid", ""), cv_text(entry.get("cv")),
         entry.get("test", ""), entry.get("trials", ""), entry.get("completed", ""),
         entry.get("rounds", ""), entry.get("seconds", "")]
        for entry in leaderboard["families"]
    ]  # fmt: skip
    selection = leaderboard.get("selection", "valid")
    header = ["family", f"{metric} ({selection})", "valid", "cv", "test", "trials", "completed",
              "rounds", "seconds"]  # fmt: skip
    return rows_table(header, rows)


def cv_text(cv: dict | None) -> str:
    if not cv:
        return ""
    return f"{cv['mean']:.4f} ± {cv['std']:.4f} ({cv['folds']} folds)"


def figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f"<h2>{escape(plot.title)}</h2>"
        f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
    )


def _cell(value) -> str:
    if isinstance(value, Markup):
        return f"<td>{value}</td>"
    if isinstance(value, float):
        return f'<td class="number">{value:.4f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="number">{value}</td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str)
    return f"<td>{escape(str(value))}</td>"
