"""One trial, as Ray Tune runs it: fit the main split while reporting every few rounds (so
ASHA can stop a weak trial), score the other CV folds, then report the final scores once,
with the model in its native format as the trial's only checkpoint, next to its validation
predictions (every fold's, in fold order), from which the stage builds an ensemble."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from ray import tune

from mlbatch_jobs.train.data import SearchData, TrainingData
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import TuningMetric
from mlbatch_jobs.train.models import Fit, FitOptions
from mlbatch_jobs.train.resources import TrialResources
from mlbatch_jobs.train.target_transform import inverse

ROUNDS = "rounds"  # the result key ASHA measures a trial's progress by
CURVE_POINTS = 500  # rounds of a trial's curve kept in its result
# Validation predictions in the checkpoint, for the ensemble: float32 halves what every
# trial uploads, and weights chosen on them lose nothing measurable.
PREDICTIONS_FILE = "valid_predictions.npy"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a family shares, besides its hyperparameters."""

    family: str
    metric: TuningMetric
    resources: TrialResources
    seed: int
    clock: object  # the search's BudgetClock (budget_clock.py) handle
    share_s: float  # the family's share of the budget, from its first trial's start
    margin_s: float  # boosting stops this long before the share ends, to score and report
    max_rounds: int
    early_stopping_rounds: int
    report_every: int

    def deadline(self) -> float:
        """Epoch seconds: stop boosting then and report what was reached."""
        return ray.get(self.clock.begin.remote(self.family, self.share_s)) - self.margin_s

    def fit_options(self, *, deadline: float, reporting: bool) -> FitOptions:
        return FitOptions(
            metric=self.metric, threads=self.resources.cpus, seed=self.seed,
            device=self.resources.device, deadline=deadline, max_rounds=self.max_rounds,
            early_stopping_rounds=self.early_stopping_rounds, report_every=self.report_every,
            on_rounds=_report_round(self.metric.name) if reporting else None,
        )  # fmt: skip


def run_trial(config: dict, *, data: SearchData, settings: TrialSettings) -> None:
    """The trainable: Tune passes config; data comes through the object store."""
    family = load_family(settings.family)
    deadline = settings.deadline()
    started = time.time()
    fit = family.fit(config, data.main, settings.fit_options(deadline=deadline, reporting=True))
    fit_s = time.time() - started
    valid, predicted = score_fit(settings.metric, family, fit, data.main)
    folds, predictions = [valid], [predicted]
    quiet = settings.fit_options(deadline=deadline, reporting=False)
    for fold in data.folds:
        if time.time() >= deadline:
            break  # the budget is spent: the folds done so far make the score
        fitted = family.fit(config, fold, quiet)
        score, predicted = score_fit(settings.metric, family, fitted, fold)
        folds.append(score)
        predictions.append(predicted)
    curve = fit.curve.thinned(CURVE_POINTS)
    result = {
        settings.metric.name: float(np.mean(folds)) if data.cv else valid,
        "valid": valid,
        "cv_scores": folds if data.cv else None,
        ROUNDS: fit.rounds,
        "best_iteration": fit.best_iteration,
        "fit_s": round(fit_s, 3),
        "rounds_per_s": round(fit.rounds / fit_s, 2) if fit_s > 0 else None,
        "allowed_s": round(deadline - started, 3),  # to boost, from its start to its deadline
        "node": ray.get_runtime_context().get_node_id(),
        "device": settings.resources.device,
        "cpus": settings.resources.cpus,
        "gpus": settings.resources.gpus,
        "curve_rounds": curve.rounds,
        "curve_train": curve.train,
        "curve_valid": curve.valid,
        "final": True,
    }
    with tempfile.TemporaryDirectory(prefix="mlbatch-trial-") as folder:
        family.save(fit, Path(folder))
        stacked = np.concatenate(predictions).astype("float32")
        np.save(Path(folder) / PREDICTIONS_FILE, stacked, allow_pickle=False)
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))


def _report_round(metric: str):
    def report(rounds: int, value: float) -> None:
        tune.report({metric: float(value), ROUNDS: rounds, "final": False})

    return report


def score_fit(
    metric: TuningMetric, family, fit: Fit, data: TrainingData
) -> tuple[float, np.ndarray]:
    """The metric on the original scale of the target, and the predictions it scored."""
    scale = data.target_transform
    predictions = inverse(scale, family.predict(fit.model, data.x_valid))
    y = inverse(scale, data.y_valid)
    return metric.score(y, predictions, data.num_classes), predictions
