"""The train stage: search every model family under Ray Tune, keep each family's best
trial, save the best model natively (optionally refit on train + valid), and write the
trials, the leaderboard and a training report."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mlbatch.stage import StageContext
from mlbatch_jobs.train.data import SearchData, TrainingData, load_search_data, load_test_split
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import tuning_metric
from mlbatch_jobs.train.models import FitOptions, native_feature_names
from mlbatch_jobs.train.ray_runtime import available_cpus, ray_session
from mlbatch_jobs.train.search import SearchResult, search
from mlbatch_jobs.train.tracking import leaderboard_document, write_json, write_trials
from mlbatch_jobs.train.tune_storage import tune_storage


def run(ctx: StageContext) -> None:
    spec = ctx.spec.train
    data, schema = load_search_data(ctx, use_folds=spec.cv)
    main = data.main
    metric = tuning_metric(main.task, spec.metric)
    print(
        f"[train] {main.task}: {len(main.y_train)} train and {len(main.y_valid)} valid rows, "
        f"{len(main.features)} features ({len(main.categorical)} categorical); tuning "
        f"{metric.name} ({metric.mode})" + (f" on {len(data.folds) + 1} folds" if data.cv else "")
    )
    storage = tune_storage(ctx.layout, ctx.attempt)
    with ray_session(ctx.work_dir) as where:
        print(f"[train] Ray: {where}; Tune state in {storage.uri}")
        result = search(data, spec, metric, storage=storage)
        models = best_models(result, ctx.work_dir / "best")
    best = result.best
    family = load_family(best["family"])
    print(f"[train] best: {best['family']} {metric.name}={best[metric.name]:.5f}")

    x_test, y_test = load_test_split(ctx, main, schema)
    tests = {
        name: metric.score(y_test, load_family(name).predict(model, x_test), main.num_classes)
        for name, model in models.items()
    }
    model_dir = ctx.out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    refit = None
    if spec.refit_on_train_valid:
        refit = refit_on_train_valid(best, data, metric, spec.seed, model_dir)
    else:
        shutil.copy(ctx.work_dir / "best" / best["family"] / family.model_file, model_dir)
    selection = "cv" if data.cv else "valid"
    info = model_info(best, result, main, schema, selection=selection, refit=refit)
    write_json(model_dir / "model_info.json", info)
    write_trials(ctx.out_dir / "trials.parquet", result)
    leaderboard = leaderboard_document(result, tests, selection)
    write_json(ctx.out_dir / "leaderboard.json", leaderboard)
    write_report(ctx, result, leaderboard)
    ctx.metrics.update({
        "best_family": best["family"],
        "tuning_metric": metric.name,
        f"valid_{metric.name}": round(best["valid"], 6),
        **({f"cv_{metric.name}": round(best[metric.name], 6)} if data.cv else {}),
        f"test_{metric.name}": round(tests[best["family"]], 6),
        "trials": len(result.trials),
        "completed_trials": sum(t["status"] == "ok" for t in result.trials),
        "early_stopped_trials": sum(t["status"] == "early_stopped" for t in result.trials),
        "search_s": result.wall_s,
    })  # fmt: skip


def best_models(result: SearchResult, folder: Path) -> dict:
    """Each family's best trial's model, fetched from its checkpoint and loaded."""
    models = {}
    for name, checkpoint in result.checkpoints.items():
        local = Path(checkpoint.to_directory(str(folder / name)))
        models[name] = load_family(name).load(local / load_family(name).model_file)
    return models


def refit_on_train_valid(best: dict, data: SearchData, metric, seed: int, model_dir: Path) -> dict:
    """The best trial's config on train + valid, for the rounds it peaked at, on every CPU
    here. The valid rows are in training now, so nothing stops it early."""
    family = load_family(best["family"])
    rounds = best["best_iteration"] + 1
    options = FitOptions(
        metric=metric, threads=available_cpus(), seed=seed, max_rounds=rounds,
        early_stopping_rounds=rounds + 1, report_every=rounds + 1,
    )  # fmt: skip
    started = time.time()
    merged: TrainingData = data.main.merged()
    fit = family.fit(best["config"], merged, options)
    family.save(fit, model_dir)
    seconds = round(time.time() - started, 3)
    rows = len(merged.y_train)
    print(f"[train] refit {best['family']} on {rows} rows, {rounds} rounds, {seconds}s")
    return {"on": ["train", "valid"], "rows": rows, "rounds": fit.rounds,
            "seconds": seconds, "best_iteration": fit.best_iteration}  # fmt: skip


def model_info(
    best: dict, result: SearchResult, data: TrainingData, schema: dict, *,
    selection: str, refit: dict | None,
) -> dict:  # fmt: skip
    """model_info.json: what evaluate and predict need to load and feed the model."""
    family = load_family(best["family"])
    scores = best.get("cv_scores")
    best_iteration = refit["best_iteration"] if refit else best["best_iteration"]
    return {
        "family": best["family"],
        "library_version": family.version,
        "model_file": family.model_file,
        "task": data.task,
        "target": schema.get("target"),
        "classes": data.classes,
        "features": data.features,  # the order the model's columns come in
        "model_feature_names": native_feature_names(data.features),
        "categorical_features": [data.features[i] for i in data.categorical],
        "config": best["config"],
        "params": {**best["config"], "device": best.get("device")},
        "best_iteration": best_iteration,
        "rounds": best_iteration + 1,  # the saved model keeps rounds up to the best
        "tuning_metric": {
            "name": result.metric.name, "mode": result.metric.mode, "valid": best["valid"],
            "cv": {"mean": best[result.metric.name], "scores": scores} if scores else None,
            "selection": selection,
        },
        "refit": refit,
        "rows": {"train": len(data.y_train), "valid": len(data.y_valid)},
        "trial_id": best["trial_id"],
    }  # fmt: skip


def write_report(ctx: StageContext, result: SearchResult, leaderboard: dict) -> None:
    # matplotlib reads MPLCONFIGDIR once, on import: scratch space first (a pod's home may
    # be read-only), then the plotting code.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    from mlbatch_jobs.train.report import render_report

    title = f"{ctx.spec.name}: training ({ctx.layout.run_id})"
    (ctx.out_dir / "report.html").write_text(render_report(result, leaderboard, title=title))
