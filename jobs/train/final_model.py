"""The model train saves: the best trial, or a weighted ensemble of the best trials of every
family when that beats it on validation; refit on train + valid; and the binary threshold.

Everything that is chosen (the ensemble's members and weights, the threshold) is chosen on
validation predictions made before the refit: after it, the validation rows are training
rows and their predictions flatter every model.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlbatch.spec import TrainSpec
from mlbatch.thresholds import best_f1
from mlbatch_jobs.train import ensemble
from mlbatch_jobs.train.data import SearchData
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import TuningMetric, sort_best_first
from mlbatch_jobs.train.models import FitOptions
from mlbatch_jobs.train.ray_runtime import available_cpus
from mlbatch_jobs.train.search import SearchResult
from mlbatch_jobs.train.target_transform import inverse
from mlbatch_jobs.train.trial import PREDICTIONS_FILE

BOOSTED = ("xgboost", "lightgbm")  # their rounds grow with the rows on a refit
# The refit may run this far past the budget: a few seconds buy a model trained on the
# validation rows too (two of thirteen 60 s benchmark runs had skipped the whole refit).
MIN_REFIT_S = 10.0


@dataclass
class Candidate:
    trial: dict  # the trial's record (family, trial_id, config, best_iteration, fit_s, ...)
    folder: Path  # its checkpoint, fetched: the model file and its validation predictions
    predictions: np.ndarray  # on every fold's validation rows it was scored on, in fold order

    @property
    def model_path(self) -> Path:
        return self.folder / load_family(self.trial["family"]).model_file


@dataclass
class FinalModel:
    members: list[tuple[float, Candidate]]  # one member with weight 1: a single model
    selection: dict | None = None  # the ensemble's selection record, when one was tried
    refit: list[dict] | None = None  # per member, when refit
    refit_skipped: str | None = None  # the members not refit, and why
    threshold: dict | None = None  # binary: from the pre-refit validation predictions
    paths: list[Path] = field(default_factory=list)  # per member, the model file to save
    # the targets of the rows the members' predictions (and the choice) are on
    targets: np.ndarray = field(default_factory=lambda: np.empty(0))
    finalists: dict | None = None  # the out-of-fold rescoring's record (finalists.py)

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1


def fetch_candidates(
    result: SearchResult, folder: Path, metric: TuningMetric, *, portfolio: bool = False
) -> list[Candidate]:
    """The ensemble candidates with their validation predictions, best first (the overall
    best trial first of all, so a tie keeps it); with the portfolio's completed trials too
    when asked (the finalists, finalists.py)."""
    records = {t["trial_id"]: t for t in result.trials}
    found = []
    checkpoints = result.candidates | (result.portfolio if portfolio else {})
    for trial_id, checkpoint in checkpoints.items():
        local = Path(checkpoint.to_directory(str(folder / trial_id)))
        if (local / PREDICTIONS_FILE).exists():
            predictions = np.load(local / PREDICTIONS_FILE, allow_pickle=False)
            found.append(Candidate(records[trial_id], local, predictions.astype("float64")))
    best = result.best["trial_id"]
    if best not in {c.trial["trial_id"] for c in found}:  # saved without its predictions
        local = Path(result.checkpoints[result.best["family"]].to_directory(str(folder / best)))
        found.append(Candidate(records[best], local, np.empty(0)))
    ranked = sort_best_first([c.trial for c in found], metric.name, metric.mode)
    order = {t["trial_id"]: n for n, t in enumerate(ranked)}
    return sorted(found, key=lambda c: (c.trial["trial_id"] != best, order[c.trial["trial_id"]]))


def validation_targets(data: SearchData, folds: int) -> np.ndarray:
    """The targets of the validation rows the candidates' predictions are on, on the
    target's own scale: the main split's, then the other folds' in order."""
    splits = [data.main, *data.folds][:folds]
    return np.concatenate([inverse(s.target_transform, s.y_valid) for s in splits])


def choose(
    candidates: list[Candidate], y: np.ndarray, spec: TrainSpec, metric: TuningMetric,
    num_classes: int,
) -> FinalModel:  # fmt: skip
    """The first candidate alone, or the greedy ensemble when it has two members or more
    (then it beats every single candidate, the first included, on the selection rows).
    y: the targets of the rows the candidates' predictions are on."""
    best = candidates[0]
    usable = [c for c in candidates if len(c.predictions) == len(y)]
    if not spec.ensemble or len(usable) < 2 or usable[0] is not best:
        return FinalModel([(1.0, best)], targets=y)
    rows = ensemble.selection_rows(len(y), seed=spec.seed)
    chosen = ensemble.select(
        [c.predictions[rows] for c in usable],
        lambda p: metric.score(y[rows], p, num_classes),
        higher_is_better=metric.mode == "max",
    )  # fmt: skip
    record = {
        "rows": len(rows), "candidates": [c.trial["trial_id"] for c in usable],
        "score": chosen.score, "best_single": chosen.single, "steps": chosen.steps,
        "kept": len(chosen.members) > 1,
    }  # fmt: skip
    if len(chosen.members) < 2:
        return FinalModel([(1.0, best)], selection=record, targets=y)
    members = [(float(chosen.weights[i]), usable[i]) for i in chosen.members]
    members.sort(key=lambda m: -m[0])
    return FinalModel(members, selection=record, targets=y)


def best_f1_threshold(final: FinalModel) -> dict | None:
    """The probability threshold with the highest F1 (the rule evaluate uses by default) on
    the rows the final model was chosen on, before the refit; None when a member has no
    predictions there."""
    if any(len(c.predictions) != len(final.targets) for _, c in final.members):
        return None
    scores = ensemble.blend([c.predictions for _, c in final.members],
                            [w for w, _ in final.members])  # fmt: skip
    best = best_f1(final.targets, scores)
    if best is None:
        return None
    return {"value": best[0], "valid_f1": best[1],
            "rule": "best F1 on the validation rows the model was chosen on (out of fold "
                    "with CV), before the refit"}  # fmt: skip


def refit_members(
    final: FinalModel, data: SearchData, metric: TuningMetric, spec: TrainSpec, folder: Path,
    *, deadline: float,
) -> None:  # fmt: skip
    """Each member's config on train + valid, boosting rounds scaled by the rows added
    (the same rounds per row of data as at its best on train alone; AutoGluon's refit_full
    does the same). Heaviest members first, while the budget lasts: a member whose refit
    would run past it keeps its model trained on train alone, said in refit_skipped."""
    main = data.main
    merged = main.merged()
    scale = len(merged.y_train) / len(main.y_train)
    cpus = available_cpus()
    ends = max(deadline, time.time() + MIN_REFIT_S)
    final.refit, final.paths, kept = [], [c.model_path for _, c in final.members], []
    for n in sorted(range(len(final.members)), key=lambda n: -final.members[n][0]):
        trial = final.members[n][1].trial
        # Boosting time grows with rows times rounds, and the rounds grow with the rows.
        estimate = (trial.get("fit_s") or 0.0) * scale**2 * (trial.get("cpus") or 1) / cpus
        left = ends - time.time()
        if estimate > left:
            kept.append(f"{trial['family']} {trial['trial_id']} (estimated {estimate:.0f}s, "
                        f"{max(left, 0):.0f}s left)")  # fmt: skip
            continue
        family = load_family(trial["family"])
        rounds = trial["best_iteration"] + 1
        if trial["family"] in BOOSTED:
            rounds = math.ceil(rounds * scale)
        options = FitOptions(
            metric=metric, threads=cpus, seed=spec.seed, max_rounds=rounds,
            early_stopping_rounds=rounds + 1, report_every=rounds + 1,
        )  # fmt: skip
        started = time.time()
        fit = family.fit(trial["config"], merged, options)
        out = folder / f"{n}-{trial['family']}"
        out.mkdir(parents=True, exist_ok=True)
        final.paths[n] = family.save(fit, out)
        seconds = round(time.time() - started, 3)
        print(f"[train] refit {trial['family']} ({trial['trial_id']}) on "
              f"{len(merged.y_train)} rows, {rounds} rounds, {seconds}s")  # fmt: skip
        final.refit.append({
            "trial_id": trial["trial_id"], "family": trial["family"], "on": ["train", "valid"],
            "rows": len(merged.y_train), "rounds": rounds, "seconds": seconds,
            "best_iteration": fit.best_iteration,
        })  # fmt: skip
    if kept:
        final.refit_skipped = "kept as trained on train alone: " + ", ".join(kept)
        print(f"[train] refit: {final.refit_skipped}")


def save(final: FinalModel, model_dir: Path, *, target_transform: str | None) -> str:
    """The model files under model_dir; the name of the one model_info.json points at."""
    paths = final.paths or [c.model_path for _, c in final.members]
    if not final.is_ensemble:
        shutil.copy(paths[0], model_dir / paths[0].name)
        return paths[0].name
    members = [{
        "family": c.trial["family"], "path": path, "weight": weight,
        "trial_id": c.trial["trial_id"], "config": c.trial["config"],
        "target_transform": target_transform,
    } for (weight, c), path in zip(final.members, paths, strict=True)]  # fmt: skip
    return ensemble.save_ensemble(model_dir, members).name
