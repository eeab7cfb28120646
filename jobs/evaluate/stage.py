"""The evaluate stage: score the trained model on the test split, write metrics and a report."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.stage import StageContext
from mlbatch_jobs.evaluate.metrics import compute_metrics
from mlbatch_jobs.evaluate.model import load_model, predict, read_model_info


def run(ctx: StageContext) -> None:
    # matplotlib caches fonts in MPLCONFIGDIR, read once when it is imported: point it at
    # scratch space first (a pod's home may be read-only), then import the plotting code.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    from mlbatch_jobs.evaluate.plots import task_plots
    from mlbatch_jobs.evaluate.report import render_report

    info = read_model_info(ctx.fetch("train", "model/model_info.json"))
    model = load_model(info, ctx.fetch("train", f"model/{info['model_file']}"))
    schema = json.loads(ctx.fetch("features", "feature_schema.json").read_text())
    if schema["task"] != info["task"]:
        raise BadInput(f"the model learned {info['task']}, but features prepared {schema['task']}")
    test = pd.read_parquet(ctx.fetch("features", "splits/test.parquet"))
    x, y = split_arrays(test, info["features"], schema.get("target_column", "__target"))

    task, classes = info["task"], info.get("classes")
    predictions = predict(model, x)
    metrics = compute_metrics(task, y, predictions, len(classes or ()))
    plots = task_plots(task, y, predictions, classes)
    print(f"[evaluate] {model.family} on {len(y)} test rows: {json.dumps(metrics)}")

    rows = {**info.get("rows", {}), "test": len(y)}
    (ctx.out_dir / "plots").mkdir(exist_ok=True)
    for plot in plots:
        (ctx.out_dir / "plots" / f"{plot.name}.png").write_bytes(plot.png)
    summary = {
        "run": ctx.layout.run_id, "task": task, "target": info.get("target"),
        "model": f"{model.family} {info.get('library_version', '')}".strip(),
        "rounds": info.get("rounds"),
        "tuned on": f"validation {info['tuning_metric']['name']} "
                    f"{info['tuning_metric']['valid']:.4f}",
    }  # fmt: skip
    html = render_report(
        title=f"mlbatch evaluation: {ctx.spec.name}", summary=summary, metrics=metrics,
        rows=rows, params=info.get("params", {}), plots=plots,
    )  # fmt: skip
    (ctx.out_dir / "report.html").write_text(html)
    result = {"task": task, "model_family": model.family, "rows": rows, "metrics": metrics}
    (ctx.out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    ctx.metrics.update(metrics, model_family=model.family, test_rows=len(y))


def split_arrays(frame: pd.DataFrame, features: list[str], target: str) -> tuple[np.ndarray, ...]:
    """The model's columns in its order, and the encoded target; BadInput if any is missing."""
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise BadInput(f"the test split lacks columns the model needs: {missing[:5]}")
    if frame.empty:
        raise BadInput("the test split has no rows")
    return frame[features].to_numpy(dtype="float64"), frame[target].to_numpy()
