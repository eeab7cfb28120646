"""The evaluate stage: measure the trained model on the test split, check the quality gates,
register and maybe promote it, and write metrics, plots and a report.

Registration and promotion happen after the outputs are written and before the commit, as
part of the stage's work: a failed gate still commits the evaluation (the run ends
rejected, exit 3) but registers and promotes nothing.
"""

from __future__ import annotations

import json
import os

import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.spec.evaluate import METRIC_MODES, check_task_metrics
from mlbatch.stage import StageContext
from mlbatch.tasks import TUNING_METRIC
from mlbatch_jobs.evaluate import inputs
from mlbatch_jobs.evaluate.evaluation import Evaluation, evaluate_model
from mlbatch_jobs.evaluate.gates import check_gates, failures


def run(ctx: StageContext) -> None:
    # matplotlib caches fonts in MPLCONFIGDIR, read once when it is imported: point it at
    # scratch space first (a pod's home may be read-only), then import the plotting code.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    from mlbatch_jobs.evaluate.plots import all_plots

    spec = ctx.spec.evaluate
    model = inputs.trained_model(ctx)
    schema = json.loads(ctx.fetch("features", "feature_schema.json").read_text())
    task, features = model.info["task"], model.info["features"]
    if schema["task"] != task:
        raise BadInput(f"the model learned {task}, but features prepared {schema['task']}")
    try:
        check_task_metrics(spec, task)
    except ValueError as error:
        raise BadInput(f"evaluate: {error}") from None
    target = schema.get("target_column", "__target")
    test = pd.read_parquet(ctx.fetch("features", "splits/test.parquet"))
    x_test, y_test = inputs.split_arrays(test, features, target, "test")
    valid = pd.read_parquet(ctx.fetch("features", "splits/valid.parquet"))
    x_valid, y_valid = inputs.split_arrays(valid, features, target, "valid")
    primary = spec.registry.metric or TUNING_METRIC[task][0]
    result = evaluate_model(model, spec=spec, x_test=x_test, y_test=y_test, x_valid=x_valid,
                            y_valid=y_valid, primary=primary)  # fmt: skip
    gates = check_gates(spec.parsed_gates(), result.metrics)
    print(f"[evaluate] {model.family} on {len(y_test)} test rows: {json.dumps(result.metrics)}")

    leaderboard = inputs.read_json_output(ctx, "train", "leaderboard.json")
    plots = all_plots(result, y_test, classes=model.info.get("classes"),
                      tuning=tuning_plots_of(ctx, leaderboard))  # fmt: skip
    (ctx.out_dir / "plots").mkdir(exist_ok=True)
    for plot in plots:
        (ctx.out_dir / "plots" / f"{plot.name}.png").write_bytes(plot.png)
    rows = {**model.info.get("rows", {}), "test": len(y_test)}
    evaluation = {
        "task": task, "target": schema.get("target"), "classes": model.info.get("classes"),
        "model_family": model.family, "rows": rows, "metrics": result.metrics,
        "intervals": result.intervals, "confidence": spec.confidence, "bootstrap": spec.bootstrap,
        "bootstrap_rows": min(len(y_test), spec.bootstrap_rows),
        "threshold": result.threshold, "gates": gates,
        "suspected_leaks": inputs.suspected_leaks(schema, features),
        "cv": (model.info.get("tuning_metric") or {}).get("cv"),
        "importance": {"model": result.importance, "model_kind": result.importance_kind,
                       "permutation": result.permutation,
                       "permutation_metric": result.permutation_metric},
    }  # fmt: skip
    _write_json(ctx.out_dir / "metrics.json", evaluation)
    for leak in evaluation["suspected_leaks"]:
        print(
            f"[evaluate] warning: the model uses {leak['column']}, a suspected leak "
            f"({leak['metric']} {leak['power']:.3f} alone)"
        )

    earlier = inputs.earlier_manifests(ctx)
    decision = register_and_promote(ctx, evaluation, result, test=test, schema=schema,
                                    primary=primary, earlier=earlier)  # fmt: skip
    if decision is not None:
        _write_json(ctx.out_dir / "promotion.json", decision)
        print(f"[evaluate] {decision['decision']}: {decision['reason']}")
    from mlbatch_jobs.evaluate.sections import write_report

    write_report(ctx, model=model, schema=schema, evaluation=evaluation, decision=decision,
                 earlier=earlier, leaderboard=leaderboard, plots=plots)  # fmt: skip
    ctx.metrics.update(result.metrics)
    ctx.metrics.update(
        intervals=result.intervals, decision_threshold=result.threshold, gates=gates,
        promotion=decision, model_family=model.family, test_rows=len(y_test),
        suspected_leaks_used=[leak["column"] for leak in evaluation["suspected_leaks"]],
    )  # fmt: skip
    if not all(g["passed"] for g in gates):
        ctx.rejected = True
        ctx.metrics["gate_failures"] = failures(gates)


def tuning_plots_of(ctx: StageContext, leaderboard: dict | None) -> list:
    """Search progress and learning curves from train's trials, when it recorded them."""
    from mlbatch_jobs.evaluate.tuning_plots import tuning_plots

    found = inputs.read_trials(ctx)
    if found is None or not found[1].get("metric"):
        return []
    trials, ranking = found
    best = {f["family"]: f.get("trial_id") for f in (leaderboard or {}).get("families", [])}
    return tuning_plots(trials, metric=ranking["metric"], mode=ranking["mode"], best=best)


def register_and_promote(
    ctx: StageContext, evaluation: dict, result: Evaluation, *, test: pd.DataFrame,
    schema: dict, primary: str, earlier: dict,
) -> dict | None:  # fmt: skip
    """Register the model and apply the promotion rule; None when the registry is off."""
    from mlbatch_jobs.evaluate.promotion import Candidate, promote
    from mlbatch_jobs.evaluate.registration import register_model

    settings = ctx.spec.evaluate.registry
    if not settings.enabled:
        return None
    name = settings.name or ctx.spec.name
    decision = {"registry": name, "version": None, "alias": settings.alias,
                "rule": settings.promote, "metric": primary,
                "candidate": result.metrics.get(primary)}  # fmt: skip
    failed = failures(evaluation["gates"])
    if failed:
        return {
            **decision,
            "decision": "not registered",
            "reason": f"quality gate failed: {failed}",
        }
    record = {
        "task": evaluation["task"], "target": evaluation["target"],
        "classes": evaluation["classes"], "model_family": evaluation["model_family"],
        "metric": {"name": primary, "mode": METRIC_MODES[primary],
                   "value": result.metrics.get(primary)},
        "metrics": result.metrics, "threshold": result.threshold, "gates": evaluation["gates"],
    }  # fmt: skip
    registered = register_model(ctx, name, record=record, metrics_file=ctx.out_dir / "metrics.json",
                                earlier=earlier)  # fmt: skip
    print(f"[evaluate] registered {name}:{registered['version']}")
    row_id = schema.get("row_id", "__row_id")
    raw_test = inputs.raw_rows(ctx, "test", test[row_id].to_numpy(), row_id)
    candidate = Candidate(
        task=evaluation["task"], target=evaluation["target"], classes=evaluation["classes"],
        metric=primary, score=result.metrics.get(primary), raw_test=raw_test,
        y=test[schema.get("target_column", "__target")].to_numpy(),
    )  # fmt: skip
    promoted = promote(
        ctx.layout.storage_uri, name, alias=settings.alias, rule=settings.promote,
        version=registered["version"], candidate=candidate, run_id=ctx.layout.run_id,
        work_dir=ctx.work_dir,
    )  # fmt: skip
    return {**decision, "version": registered["version"], **promoted}


def _write_json(path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
