"""What the evaluation report says about the run beyond the metrics: a summary, the data
as etl and explore saw it, the features, and the training leaderboard."""

from __future__ import annotations

import numpy as np

from mlbatch.manifest import Manifest
from mlbatch.scoring import TrainedModel
from mlbatch.stage import StageContext
from mlbatch_jobs.evaluate.plots import Plot
from mlbatch_jobs.evaluate.report import render_report

ETL_KEYS = ("rows", "columns", "rows_in", "rows_filtered", "rows_missing_target", "validation")


def write_report(
    ctx: StageContext, *, model: TrainedModel, schema: dict, evaluation: dict,
    decision: dict | None, earlier: dict[str, tuple[Manifest, str]], leaderboard: dict | None,
    plots: list[Plot],
) -> None:  # fmt: skip
    info = model.info
    html = render_report(
        title=f"mlbatch evaluation: {ctx.spec.name}",
        summary=run_summary(ctx, info, evaluation),
        gates=evaluation["gates"], decision=decision, metrics=evaluation["metrics"],
        intervals=evaluation["intervals"], interval_note=interval_note(evaluation),
        data=data_summary(ctx, schema, earlier), excluded=schema.get("excluded", {}),
        leaderboard=leaderboard, plots=plots, params=info.get("params", {}),
        leaks=evaluation.get("suspected_leaks"),
    )  # fmt: skip
    (ctx.out_dir / "report.html").write_text(html, encoding="utf-8")


def interval_note(evaluation: dict) -> str:
    """What the intervals are: their confidence, and the resample size when it is below the
    test split's (bootstrap.py scales those intervals to the whole split)."""
    note = f"{evaluation['confidence']:.0%} bootstrap intervals"
    drawn, test = evaluation.get("bootstrap_rows"), evaluation["rows"].get("test")
    if drawn and test and drawn < test:
        note += f", resamples of {drawn:,} of {test:,} test rows, scaled to the whole split"
    return note


def run_summary(ctx: StageContext, info: dict, evaluation: dict) -> dict:
    summary = {
        "run": ctx.layout.run_id, "spec": ctx.spec.name, "task": evaluation["task"],
        "target": evaluation["target"],
        "model": f"{info['family']} {info.get('library_version', '')}".strip(),
    }  # fmt: skip
    if info.get("rounds") is not None:
        summary["rounds"] = info["rounds"]
    tuning = info.get("tuning_metric")
    if tuning:
        summary["tuned on"] = f"validation {tuning['name']} {tuning['valid']:.4f}"
        if tuning.get("cv"):
            scores = tuning["cv"]["scores"]
            summary[f"cv {tuning['name']}"] = (
                f"{np.mean(scores):.4f} ± {np.std(scores):.4f} over {len(scores)} folds"
            )
    summary.update({f"{name} rows": count for name, count in evaluation["rows"].items()})
    threshold = evaluation["threshold"]
    if threshold:
        summary["positive class"] = evaluation["classes"][1]
        summary["threshold"] = f"{threshold['value']:.4f} ({threshold['rule']})"
    elif evaluation["classes"]:
        summary["classes"] = ", ".join(map(str, evaluation["classes"]))
    return summary


def data_summary(
    ctx: StageContext, schema: dict, earlier: dict[str, tuple[Manifest, str]]
) -> dict[str, dict]:
    """Per earlier stage, what it measured (from its manifest)."""
    sections = {}
    if "etl" in earlier:
        metrics = earlier["etl"][0].metrics
        sections["Clean table (etl)"] = {k: metrics[k] for k in ETL_KEYS if k in metrics}
    if "explore" in earlier:
        metrics = earlier["explore"][0].metrics
        sections["Exploration"] = {k: v for k, v in metrics.items() if _scalar(v)}
    features = ctx.upstream("features").metrics
    kinds = [f["kind"] for f in schema["features"]]
    sections["Features"] = {
        **{k: v for k, v in features.items() if _scalar(v)},
        "numeric features": kinds.count("numeric"),
        "categorical features": kinds.count("categorical"),
    }
    return sections


def _scalar(value) -> bool:
    return isinstance(value, (int, float, str, bool))
