"""The train stage: search every model family under Ray Tune, refit the best, save it natively."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlbatch.stage import StageContext
from mlbatch_jobs.train.data import TrainingData, load_training_data
from mlbatch_jobs.train.local_ray import available_cpus, local_ray
from mlbatch_jobs.train.models import FAMILIES, Fit, native_feature_names
from mlbatch_jobs.train.scoring import tuning_score
from mlbatch_jobs.train.search import SearchResult, search


def run(ctx: StageContext) -> None:
    data, schema = load_training_data(ctx)
    print(
        f"[train] {data.task}: {len(data.y_train)} train and {len(data.y_valid)} valid rows, "
        f"{len(data.features)} features ({len(data.categorical)} categorical)"
    )
    with local_ray(ctx.work_dir, num_cpus=available_cpus()):
        result = search(data, ctx.spec.train, storage=ctx.work_dir / "tune")
    best = result.best
    print(f"[train] best: {best['family']} {result.metric}={best[result.metric]:.5f}; refitting")

    started = time.time()
    fit, score = refit(best, data, seed=ctx.spec.train.seed, threads=available_cpus())
    refit_s = round(time.time() - started, 3)
    write_outputs(ctx.out_dir, result, fit, data, schema, score=score)
    ctx.metrics.update({
        "best_family": best["family"],
        "tuning_metric": result.metric,
        f"valid_{result.metric}": round(score, 6),
        "trials": len(result.trials),
        "completed_trials": sum(t["status"] == "ok" for t in result.trials),
        "search_s": result.wall_s,
        "refit_s": refit_s,
    })  # fmt: skip


def refit(best: dict, data: TrainingData, *, seed: int, threads: int) -> tuple[Fit, float]:
    """The best trial again, on every CPU: the same config and at most the rounds it ran."""
    model = FAMILIES[best["family"]]
    fit = model.fit(best["config"], data, threads=threads, seed=seed, max_rounds=best["rounds"])
    predictions = model.predict(fit, data.x_valid)
    return fit, tuning_score(data.task, data.y_valid, predictions, data.num_classes)


def write_outputs(
    out_dir: Path, result: SearchResult, fit: Fit, data: TrainingData, schema: dict,
    *, score: float,
) -> None:  # fmt: skip
    """model/ (the best family's refit model and model_info.json), trials.json, leaderboard.json."""
    family = result.best["family"]
    model = FAMILIES[family]
    model_dir = out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    model_file = model.save(fit, model_dir)
    info = {
        "family": family,
        "library_version": model.version,
        "model_file": model_file.name,
        "task": data.task,
        "target": schema.get("target"),
        "classes": data.classes,
        "features": data.features,  # the order the model's columns come in
        "model_feature_names": native_feature_names(data.features),
        "categorical_features": [data.features[i] for i in data.categorical],
        "config": result.best["config"],
        "params": fit.params,
        "best_iteration": fit.best_iteration,
        "rounds": fit.best_iteration + 1,  # the saved model keeps rounds up to the best
        "tuning_metric": {"name": result.metric, "mode": result.mode, "valid": score},
        "rows": {"train": len(data.y_train), "valid": len(data.y_valid)},
    }
    write_json(model_dir / "model_info.json", info)
    ranking = {"metric": result.metric, "mode": result.mode}
    write_json(out_dir / "trials.json", {**ranking, "trials": result.trials})
    write_json(out_dir / "leaderboard.json", {**ranking, "families": result.leaderboard})


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value):
    """numpy scalars (Optuna and Tune hand some back) as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
