"""The train stage: pick the target's scale, search every model family under Ray Tune,
keep the best trial or a weighted ensemble of the best trials, refit it on train + valid,
save it natively, and write the trials, the leaderboard and a training report."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlbatch import scoring
from mlbatch.spec import TrainSpec
from mlbatch.stage import StageContext
from mlbatch_jobs.train import (
    data_parallel,
    final_model,
    finalists,
    resources,
    target_transform,
)
from mlbatch_jobs.train.data import (
    SearchData,
    TrainingData,
    load_search_data,
    load_test_split,
    stored_splits,
)
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import TuningMetric, tuning_metric
from mlbatch_jobs.train.models import FitOptions, native_feature_names
from mlbatch_jobs.train.portfolio import PORTFOLIO
from mlbatch_jobs.train.ray_runtime import available_cpus, ray_session
from mlbatch_jobs.train.search import SearchResult, search
from mlbatch_jobs.train.tracking import (
    final_document,
    leaderboard_document,
    write_json,
    write_trials,
)
from mlbatch_jobs.train.tune_storage import tune_storage

# The refit runs after the search and within the same time budget: the search leaves it
# this share (what the refit does not use is simply not spent).
REFIT_SHARE = 0.15
# ... and, before it, this share to score the finalists on the other CV folds (finalists.py),
# at most FINALISTS_MAX_S: their fits take as long whatever the budget (4-11 s for 17 on
# tables of 5,000 rows), and time they do not use is not given back to the search.
FINALISTS_SHARE = 0.2
FINALISTS_MAX_S = 30.0


def run(ctx: StageContext) -> None:
    started = time.time()
    spec = ctx.spec.train
    data, schema = load_search_data(ctx, use_folds=spec.cv != "off")
    main = data.main
    metric = tuning_metric(main.task, spec.metric)
    folds = {"trials": f" on {len(data.folds) + 1} folds",
             "finalists": f"; finalists on {len(data.folds)} more folds"}  # fmt: skip
    print(
        f"[train] {main.task}: {len(main.y_train)} train and {len(main.y_valid)} valid rows, "
        f"{len(main.features)} features ({len(main.categorical)} categorical); tuning "
        f"{metric.name} ({metric.mode})" + (folds[spec.cv] if data.cv else "")
    )
    scale = choose_scale(data.main, spec, metric)
    if scale["transform"]:  # every trial learns log1p(y); scores stay on the original scale
        log = scale["transform"]
        data = SearchData(target_transform.transformed(data.main, log),
                          [target_transform.transformed(f, log) for f in data.folds])  # fmt: skip
    if main.task == "regression":
        print(f"[train] target scale: {scale['transform'] or 'original'} ({scale['reason']})")
    budget = spec.time_budget_s - (time.time() - started)  # Ray's start is not charged
    storage = tune_storage(ctx.layout, ctx.attempt)
    with ray_session(ctx.work_dir) as where:
        print(f"[train] Ray: {where}; Tune state in {storage.uri}")
        parallel, why = data_parallel.decide(
            spec, table_bytes=main.x_train.nbytes,
            worker_memory=data_parallel.worker_memory_bytes(),
            cluster_cpus=resources.cluster_resources()["CPU"],
        )  # fmt: skip
        if not parallel and spec.data_parallel == "auto":
            print(f"[train] one worker per trial: {why}")
        splits = None
        if parallel:
            splits = stored_splits(ctx, schema, data.main)
            print(f"[train] data-parallel: XGBoost and LightGBM trials train on "
                  f"{spec.data_parallel_workers} workers ({why})")  # fmt: skip
            if data.cv:
                print("[train] data-parallel: trials score on the train/valid split only, "
                      "not on features' CV folds")  # fmt: skip
                data = SearchData(data.main)
        refit = spec.refit_on_train_valid and not parallel
        rescoring = spec.cv == "finalists" and data.cv
        searched = SearchData(data.main) if rescoring else data  # trials: the main split alone
        search_budget = budget * (1 - (REFIT_SHARE if refit else 0.0))
        if rescoring:
            search_budget -= min(FINALISTS_SHARE * budget, FINALISTS_MAX_S)
        result = search(searched, spec, metric, storage=storage,
                        budget_s=max(search_budget, 1.0), splits=splits)  # fmt: skip
        models = best_models(result, ctx.work_dir / "best")
        candidates = final_model.fetch_candidates(result, ctx.work_dir / "candidates", metric,
                                                  portfolio=rescoring)  # fmt: skip
    best = result.best
    print(f"[train] best: {best['family']} {metric.name}={best[metric.name]:.5f}")

    rescored = None
    if rescoring:
        ends = started + spec.time_budget_s * (1 - (REFIT_SHARE if refit else 0.0))
        rescored = score_finalists(candidates, result, data, spec, metric,
                                   deadline=ends + sum(result.startup_s.values()))  # fmt: skip
    if rescored is not None and rescored.candidates:
        chosen_from = rescored.candidates
        final = final_model.choose(chosen_from, rescored.targets, spec, metric, main.num_classes)
    else:  # the search's own candidates, on the rows they were scored on
        chosen_from = [c for c in candidates if c.trial["trial_id"] in result.candidates
                       or c is candidates[0]]  # fmt: skip
        y = final_model.validation_targets(searched, len(best.get("cv_scores") or [1]))
        final = final_model.choose(chosen_from, y, spec, metric, main.num_classes)
    final.finalists = rescored.record if rescored is not None else None
    lead = chosen_from[0].trial  # the saved model's trial, or the ensemble's best single
    if main.task == "binary":
        final.threshold = final_model.best_f1_threshold(final)
    if final.is_ensemble:
        shown = ", ".join(f"{c.trial['family']} {w:.2f}" for w, c in final.members)
        chosen = final.selection
        rows = "the other folds" if "finalist_score" in lead else "validation"
        print(f"[train] ensemble: {metric.name}={chosen['score']:.5f} on {rows} vs "
              f"{chosen['best_single']:.5f} for the best single model ({shown})")  # fmt: skip
    if spec.refit_on_train_valid and parallel:
        # A refit would be one process over train + valid: the very table data-parallel
        # training keeps out of one worker's memory.
        final.refit_skipped = ("data-parallel training: the model is kept as trained on "
                               "train alone (the refit runs in one process)")  # fmt: skip
        print(f"[train] refit: {final.refit_skipped}")
    elif refit:
        # The workers' start-up was not charged to the search: nor is it to the refit.
        deadline = started + spec.time_budget_s + sum(result.startup_s.values())
        final_model.refit_members(final, data, metric, spec, ctx.work_dir / "refit",
                                  deadline=deadline)  # fmt: skip
    model_dir = ctx.out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    model_file = final_model.save(final, model_dir, target_transform=scale["transform"])
    selection = "cv" if searched.cv else "valid"  # how the search ranked its trials
    chosen_on = "finalists" if "finalist_score" in lead else selection
    info = model_info(lead, result, main, schema, selection=chosen_on, final=final,
                      model_file=model_file, scale=scale)  # fmt: skip
    write_json(model_dir / "model_info.json", info)

    # The test split is for reading only: each family's best, and the saved model loaded
    # back through mlbatch.scoring, the path evaluate and predict take.
    x_test, y_test = load_test_split(ctx, main, schema)
    tests = {
        name: metric.score(y_test, target_transform.inverse(
            scale["transform"], load_family(name).predict(model, x_test)), main.num_classes)
        for name, model in models.items()
    }  # fmt: skip
    saved_test = metric.score(y_test, scoring.load_model(model_dir).predict(x_test),
                              main.num_classes)  # fmt: skip
    write_trials(ctx.out_dir / "trials.parquet", result)
    leaderboard = leaderboard_document(result, tests, selection)
    leaderboard["final"] = final_document(final, scale, metric, test=saved_test)
    write_json(ctx.out_dir / "leaderboard.json", leaderboard)
    write_report(ctx, result, leaderboard)
    ctx.metrics.update({
        "best_family": best["family"],
        "model": info["family"],
        "tuning_metric": metric.name,
        f"valid_{metric.name}": round(best["valid"], 6),
        **({f"cv_{metric.name}": round(best[metric.name], 6)} if searched.cv else {}),
        **({f"finalists_{metric.name}": round(lead["finalist_score"], 6)}
           if "finalist_score" in lead else {}),
        f"test_{metric.name}": round(saved_test, 6),
        f"test_{metric.name}_best_single": round(tests[best["family"]], 6),
        "target_transform": scale["transform"],
        "trials": len(result.trials),
        "completed_trials": sum(t["status"] == "ok" for t in result.trials),
        "early_stopped_trials": sum(t["status"] == "early_stopped" for t in result.trials),
        "search_s": result.wall_s,
        "search_startup_s": round(sum(result.startup_s.values()), 3),
        "data_parallel": parallel,
    })  # fmt: skip


def score_finalists(
    candidates: list[final_model.Candidate], result: SearchResult, data: SearchData,
    spec: TrainSpec, metric: TuningMetric, *, deadline: float,
) -> finalists.Rescored:  # fmt: skip
    """The search's finalists scored on the other folds (finalists.py), until deadline."""
    ordered = finalists.order(candidates, result.leaderboard)
    options = FitOptions(
        metric=metric, seed=spec.seed, max_rounds=spec.max_rounds,
        early_stopping_rounds=spec.early_stopping_rounds, report_every=spec.report_every,
    )  # fmt: skip
    rescored = finalists.rescore(ordered, data, options, threads=available_cpus(),
                                 deadline=deadline)  # fmt: skip
    record = rescored.record
    print(f"[train] finalists: {len(rescored.candidates)} of {len(ordered)} scored on "
          f"{record['folds']} more folds ({record['rows']} rows) in {record['seconds']:.1f}s"
          + (f"; best {rescored.candidates[0].trial['family']} "
             f"{metric.name}={rescored.candidates[0].trial['finalist_score']:.5f}"
             if rescored.candidates else "; none in time: chosen on the valid split"))
    return rescored


def choose_scale(data: TrainingData, spec: TrainSpec, metric: TuningMetric) -> dict:
    """The target's scale (target_transform.py), measured with the first portfolio
    configuration of a searched booster (or of the first family)."""
    name = next((f for f in ("lightgbm", "xgboost") if f in spec.models), spec.models[0])
    config = {k: v for k, v in (PORTFOLIO.get(name) or [{}])[0].items()
              if k not in ("C", "class_weight")}  # fmt: skip
    options = FitOptions(
        metric=metric, threads=available_cpus(), seed=spec.seed,
        max_rounds=min(spec.max_rounds, target_transform.MAX_ROUNDS),
        early_stopping_rounds=spec.early_stopping_rounds, report_every=spec.max_rounds + 1,
    )  # fmt: skip
    if name in ("lightgbm", "xgboost"):
        config["learning_rate"] = 0.1  # converges within the comparison's rounds
    return target_transform.choose(data, metric, family=load_family(name), config=config,
                                   options=options, setting=spec.target_transform)  # fmt: skip


def best_models(result: SearchResult, folder: Path) -> dict:
    """Each family's best trial's model, fetched from its checkpoint and loaded."""
    models = {}
    for name, checkpoint in result.checkpoints.items():
        local = Path(checkpoint.to_directory(str(folder / name)))
        models[name] = load_family(name).load(local / load_family(name).model_file)
    return models


def model_info(
    best: dict, result: SearchResult, data: TrainingData, schema: dict, *,
    selection: str, final: final_model.FinalModel, model_file: str, scale: dict,
) -> dict:  # fmt: skip
    """model_info.json: what evaluate and predict need to load and feed the model."""
    scores = best.get("cv_scores")
    refit = final.refit[0] if final.refit and not final.is_ensemble else None
    best_iteration = refit["best_iteration"] if refit else best["best_iteration"]
    info = {
        "family": best["family"],
        "library_version": load_family(best["family"]).version,
        "model_file": model_file,
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
            # scored again out of fold on the other folds, and chosen there (finalists.py)
            "finalists": {"score": best["finalist_score"],
                          "fold_scores": best["finalist_fold_scores"]}
            if "finalist_score" in best else None,
            "selection": selection,
        },
        # log1p: the model predicts log1p(target); mlbatch.scoring returns expm1 of it
        "target_transform": scale["transform"],
        "threshold": final.threshold,  # binary, from pre-refit validation predictions
        "refit": refit if not final.is_ensemble else final.refit,
        "rows": {"train": len(data.y_train), "valid": len(data.y_valid)},
        "trial_id": best["trial_id"],
        "ensemble": None,
    }  # fmt: skip
    if final.is_ensemble:
        families = sorted({c.trial["family"] for _, c in final.members})
        members = [{"family": c.trial["family"], "trial_id": c.trial["trial_id"], "weight": w}
                   for w, c in final.members]  # fmt: skip
        info.update({
            "family": "ensemble",
            "library_version": ", ".join(f"{f} {load_family(f).version}" for f in families),
            "config": None, "best_iteration": None, "rounds": None,
            "params": {f"{m['family']} {m['trial_id']}": round(m["weight"], 4) for m in members},
            "ensemble": {**final.selection, "members": members},
        })  # fmt: skip
    return info


def write_report(ctx: StageContext, result: SearchResult, leaderboard: dict) -> None:
    # matplotlib reads MPLCONFIGDIR once, on import: scratch space first (a pod's home may
    # be read-only), then the plotting code.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    from mlbatch_jobs.train.report import render_report

    title = f"{ctx.spec.name}: training ({ctx.layout.run_id})"
    (ctx.out_dir / "report.html").write_text(render_report(result, leaderboard, title=title))
