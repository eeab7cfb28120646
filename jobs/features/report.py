"""The features report: one self-contained HTML page saying what was done to each column
and why, how the rows were split, and the dimensionality before and after. Every name
and value from the data or the spec is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from mlbatch.splitting import Split
from mlbatch_jobs.features.treatment import Choice

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left;
         vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td ul { margin: 0; padding-left: 1.2em; } .muted { color: #777; }
"""


def render_report(
    schema: Mapping[str, Any],
    choices: list[Choice],
    split: Split,
    folds: Mapping[str, Any] | None,
    *,
    title: str,
) -> str:
    sections = [
        _overview(schema, choices),
        _split(split, schema.get("classes")),
        _folds(folds),
        _treatments(choices, schema["features"]),
        _excluded(schema["excluded"]),
        _reduction(schema["reduction"]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n"
    )


def _overview(schema: Mapping[str, Any], choices: list[Choice]) -> str:
    reduction = schema["reduction"]
    kinds = {}
    for feature in schema["features"]:
        kinds[feature["kind"]] = kinds.get(feature["kind"], 0) + 1
    rows = [
        ("task", escape(schema["task"])),
        ("target", f"<code>{escape(str(schema['target']))}</code>"),
        ("input columns", f"{len(choices):,}"),
        ("features before reduction", f"{reduction['before']:,}"),
        ("features", f"{len(schema['features']):,} ("
         + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")"),
        ("columns not used", f"{len(schema['excluded']):,}"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return (
        "<h2>Overview</h2>\n<table>" + cells + "</table>\n<p>Every treatment was chosen "
        "from, and fitted on, the training split only; valid and test rows were only "
        "transformed.</p>"
    )


def _split(split: Split, classes: list | None) -> str:
    rule = split.rule
    described = {
        "random": "random rows" + (", stratified" if rule.get("stratify") else ""),
        "time": f"by time (<code>{escape(str(rule.get('time_column')))}</code>): train on "
                "the past, test on the future",
        "group": f"by group (<code>{escape(str(rule.get('group_column')))}</code>): no "
                 "group in two splits",
    }[rule["strategy"]]  # fmt: skip
    rows = "".join(
        f'<tr><td>{name}</td><td class="n">{len(positions):,}</td></tr>'
        for name, positions in split.rows.items()
    )
    boundaries = "".join(
        f"<li>{key.replace('_', ' ')}: {escape(str(rule[key]))}</li>"
        for key in ("valid_from", "test_from") if key in rule
    )  # fmt: skip
    return (
        f"<h2>Split</h2>\n<p>{described}; seed {rule['seed']}. The row ids of every split are "
        "in <code>split.parquet</code> and their hashes in the manifest.</p>\n"
        f"<table><tr><th>split</th><th>rows</th></tr>{rows}</table>"
        + (f"<ul>{boundaries}</ul>" if boundaries else "")
    )


def _folds(folds: Mapping[str, Any] | None) -> str:
    if not folds:
        return ""
    rows = "".join(
        f'<tr><td>{f["fold"]}</td><td class="n">{f["train_rows"]:,}</td>'
        f'<td class="n">{f["valid_rows"]:,}</td><td class="n">{len(f["features"])}</td></tr>'
        for f in folds["folds"]
    )
    return (
        f"<h2>Cross-validation folds</h2>\n<p>{folds['k']} folds on the rows outside test, "
        "each prepared by a transformer fitted on that fold's training rows only "
        "(<code>folds.json</code>). The last fold is also the train/valid split.</p>\n"
        "<table><tr><th>fold</th><th>train rows</th><th>valid rows</th><th>features</th></tr>"
        f"{rows}</table>"
    )


def _treatments(choices: list[Choice], features: list[Mapping[str, Any]]) -> str:
    rows = []
    for choice in choices:
        outputs = [f["name"] for f in features if f["input"] == choice.column]
        why = "".join(f"<li>{escape(reason)}</li>" for reason in choice.why)
        names = ", ".join(f"<code>{escape(n)}</code>" for n in outputs) or "none (not kept)"
        rows.append(
            f"<tr><td><code>{escape(choice.column)}</code></td><td>{choice.kind}</td>"
            f"<td><ul>{why}</ul></td><td>{names}</td></tr>"
        )
    return (
        "<h2>What was done to each column</h2>\n<table><tr><th>column</th><th>kind</th>"
        "<th>treatment and why</th><th>features</th></tr>\n" + "\n".join(rows) + "</table>"
    )


def _excluded(excluded: Mapping[str, str]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(column)}</code></td><td>{escape(reason)}</td></tr>"
        for column, reason in excluded.items()
    )
    head = "<tr><th>column</th><th>why</th></tr>"
    return f"<h2>Not used as features</h2>\n<table>{head}{rows}</table>"


def _reduction(reduction: Mapping[str, Any]) -> str:
    if reduction["method"] == "none":
        return ""
    kept = ", ".join(f"<code>{escape(name)}</code>" for name in reduction["kept"])
    return (
        f"<h2>Reduction: {escape(reduction['method'])}</h2>\n<p>{reduction['before']} features "
        f"before, {reduction['after']} after, learned on the training split. Kept: {kept}.</p>"
    )
