"""The training report: one self-contained HTML page (plots embedded as base64 PNG) with the
leaderboard, train-vs-valid curves with overfitting flagged, hyperparameter importance and
per-parameter plots, and a profile of the trials."""

from __future__ import annotations

import base64
import bisect
import json
import statistics
from html import escape

from mlbatch_jobs.train import importance, report_plots
from mlbatch_jobs.train.search import SearchResult

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f4f4f4; }
.warn { color: #a40; font-weight: 600; }
img { max-width: 100%; }
"""
OVERFIT_GAP_GROWTH = 2.0  # the train-valid gap at the kept round vs early on
OVERFIT_MIN_GAP = 0.02  # and large enough to matter, relative to the valid value


def render_report(result: SearchResult, leaderboard: dict, *, title: str) -> str:
    metric = result.metric.name
    sections = [f"<h1>{escape(title)}</h1>", _leaderboard(leaderboard, metric)]
    if leaderboard.get("final"):
        sections.append(_final(leaderboard["final"], metric))
    sections.append("<h2>Training and validation curves</h2>")
    for row in result.leaderboard:
        trial = _trial(result, row["trial_id"])
        sections.append(_curves(row["family"], trial, metric, result.metric.mode))
    sections.append("<h2>Hyperparameters and their impact</h2>")
    for family in dict.fromkeys(t["family"] for t in result.trials):
        sections.append(_impact(family, [t for t in result.trials if t["family"] == family],
                                metric))  # fmt: skip
    sections.append(_profile(result))
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def overfitting(trial: dict, mode: str) -> tuple[bool, float, float]:
    """(flagged, gap early on, gap at the kept round): the train sample ahead of valid by
    a growing margin. Gaps are in the metric's better direction."""
    train, valid = trial.get("curve_train") or [], trial.get("curve_valid") or []
    if len(valid) < 5:
        return False, 0.0, 0.0
    kept = kept_index(trial)
    early = kept // 10
    sign = 1.0 if mode == "max" else -1.0
    gap_early = sign * (train[early] - valid[early])
    gap_kept = sign * (train[kept] - valid[kept])
    big = gap_kept > OVERFIT_MIN_GAP * max(abs(valid[kept]), 1e-12)
    return big and gap_kept > OVERFIT_GAP_GROWTH * max(gap_early, 0.0), gap_early, gap_kept


def kept_index(trial: dict) -> int:
    """Where in the (thinned) curve the kept model's round is."""
    kept_round = int(trial.get("best_iteration") or 0) + 1
    return max(bisect.bisect_right(trial["curve_rounds"], kept_round) - 1, 0)


def _trial(result: SearchResult, trial_id: str) -> dict:
    return next(t for t in result.trials if t["trial_id"] == trial_id)


def _leaderboard(leaderboard: dict, metric: str) -> str:
    header = ["family", f"{metric} ({leaderboard['selection']})", "valid", "cv (mean ± std)",
              "test (not used to select)", "trials", "completed", "early stopped"]  # fmt: skip
    rows = []
    for entry in leaderboard["families"]:
        cv = entry["cv"]
        rows.append([
            entry["family"], _number(entry[metric]), _number(entry["valid"]),
            f"{cv['mean']:.4f} ± {cv['std']:.4f} ({cv['folds']} folds)" if cv else "",
            _number(entry["test"]), entry["trials"], entry["completed"], entry["early_stopped"],
        ])  # fmt: skip
    return "<h2>Leaderboard</h2>" + _table(header, rows)


def _finalists(finalists: dict | None, metric: str) -> str:
    """The finalists' scores on the other folds, where the saved model was chosen."""
    if not finalists:
        return ""
    html = (f"<p>Chosen on the other {finalists['folds']} CV folds' {finalists['rows']} "
            f"validation rows (out of fold), among {len(finalists['scored'])} finalists "
            f"fitted on every fold in {finalists['seconds']:.1f}s"
            + (f"; {len(finalists['left_out'])} left out when the time ran out"
               if finalists["left_out"] else "") + ":</p>")  # fmt: skip
    rows = [[f["family"], f["trial_id"], f["origin"] or "", _number(f["valid"]),
             _number(f["score"])] for f in finalists["scored"]]  # fmt: skip
    return html + _table(["family", "trial", "origin", "valid", f"{metric} out of fold"], rows)


def _final(final: dict, metric: str) -> str:
    """The saved model: its members and weights, how they were chosen, the target's scale."""
    html = f"<h2>Saved model: {escape(final['model'])}</h2>"
    selection = final.get("ensemble_selection")
    if selection:
        verdict = "kept" if selection["kept"] else "not kept: no blend beat the best single model"
        html += (f"<p>Greedy ensemble over {len(selection['candidates'])} trials, chosen on "
                 f"{selection['rows']} validation rows: {metric} {selection['score']:.4f} vs "
                 f"{selection['best_single']:.4f} for the best single trial ({verdict}).</p>")
    rows = [[m["family"], m["trial_id"], f"{m['weight']:.3f}", _number(m.get(metric)),
             _number(m.get("valid"))] for m in final["members"]]  # fmt: skip
    html += _table(["family", "trial", "weight", metric, "valid"], rows)
    html += _finalists(final.get("finalists"), metric)
    refit = final.get("refit")
    if refit:
        html += "<p>Refit on train + valid: " + ", ".join(
            f"{r['family']} {r['rounds']} rounds on {r['rows']} rows" for r in refit) + ".</p>"
    if final.get("refit_skipped"):
        html += f"<p>Refit skipped: {escape(final['refit_skipped'])}.</p>"
    scale = final.get("target_transform") or {}
    if scale.get("reason"):
        html += (f"<p>Target scale: {escape(scale['transform'] or 'original')} "
                 f"({escape(scale['reason'])}).</p>")
    if final.get("threshold"):
        html += (f"<p>Threshold {final['threshold']['value']:.4f} "
                 f"({escape(final['threshold']['rule'])}).</p>")
    return html + f"<p>Test {metric} of the saved model (not used to select): " \
                  f"{_number(final.get('test'))}.</p>"


def _curves(family: str, trial: dict, metric: str, mode: str) -> str:
    if len(trial.get("curve_rounds") or []) < 2:
        return f"<h3>{escape(family)}</h3><p>One fit, no rounds: no curve.</p>"
    flagged, early, kept = overfitting(trial, mode)
    note = (
        f'<p class="warn">Overfitting: the train-valid gap grew from {early:.4f} to {kept:.4f} '
        "by the kept round; more regularisation may help.</p>" if flagged
        else f"<p>Train-valid gap {early:.4f} early on, {kept:.4f} at the kept round.</p>"
    )  # fmt: skip
    kept_round = trial["curve_rounds"][kept_index(trial)]
    plot = report_plots.curve_plot(family, trial, metric, kept_round)
    return f"<h3>{escape(family)}</h3>{note}{_image(plot, f'{family} curves')}"


def _impact(family: str, trials: list[dict], metric: str) -> str:
    table = importance.parameter_table(trials, metric)
    done = len(table)
    html = f"<h3>{escape(family)}</h3><p>{done} completed trials of {len(trials)}.</p>"
    if table.empty:
        return html
    shares = importance.importances(table, metric)
    if shares:
        html += _image(report_plots.importance_plot(family, shares), f"{family} importance")
    names = [c for c in table.columns if c != metric]
    if names:
        plot = report_plots.parameter_plots(family, table, metric, names)
        html += _image(plot, f"{family} parameters")
    return html


def _profile(result: SearchResult) -> str:
    header = ["family", "trials", "median s per trial", "median rounds/s", "CPUs", "GPUs",
              "device", "nodes"]  # fmt: skip
    rows = []
    for family in dict.fromkeys(t["family"] for t in result.trials):
        own = [t for t in result.trials if t["family"] == family]
        done = [t for t in own if t["status"] == "ok"]
        speeds = [t["rounds_per_s"] for t in done if t.get("rounds_per_s")]
        rows.append([
            family, len(own), _number(_median([t["seconds"] for t in own])),
            _number(_median(speeds)), _first(done, "cpus"), _first(done, "gpus"),
            _first(done, "device"), len({t["node"] for t in done if t.get("node")}),
        ])  # fmt: skip
    return f"<h2>Profile</h2><p>Search wall time {result.wall_s:.1f}s.</p>" + _table(header, rows)


def _median(values: list) -> float | None:
    return statistics.median(values) if values else None


def _first(trials: list[dict], key: str):
    return trials[0].get(key) if trials else ""


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(json.dumps(c) if isinstance(c, dict) else str(c))}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></p>'
