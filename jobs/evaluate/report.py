"""The evaluation report: one self-contained HTML page, plots embedded as base64 PNG."""

from __future__ import annotations

import base64
import json
from html import escape

from mlbatch_jobs.evaluate.plots import Plot

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
img { max-width: 100%; }
"""


def render_report(
    *, title: str, summary: dict, metrics: dict, rows: dict, params: dict, plots: list[Plot]
) -> str:
    """The whole page as a string."""
    sections = [
        f"<h1>{escape(title)}</h1>",
        table(summary),
        "<h2>Test metrics</h2>",
        table({name: f"{value:.4f}" for name, value in metrics.items()}, numbers=True),
        "<h2>Rows</h2>",
        table(rows, numbers=True),
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


def table(values: dict, *, numbers: bool = False) -> str:
    cell = '<td class="number">' if numbers else "<td>"
    body = "".join(
        f"<tr><th>{escape(str(name))}</th>{cell}{escape(str(value))}</td></tr>"
        for name, value in values.items()
    )
    return f"<table>{body}</table>"


def figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f"<h2>{escape(plot.title)}</h2>"
        f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
    )
