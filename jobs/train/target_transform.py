"""The scale a regression target is learned on: its own, or log1p for a skewed
non-negative target (prices, amounts, durations).

On a long right tail, squared error on the raw scale is dominated by a few huge values,
and trees spend their splits on them; on the log scale the errors are relative and the
model fits the bulk of the rows. But log is not always better (RMSE on the original scale
rewards getting the big values right), so the choice is measured: one default
configuration fitted on both scales, scored on the validation split on the original scale.
Predictions always come back on the original scale (expm1), in train and in
mlbatch.scoring.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from scipy.stats import skew

from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.metrics import TuningMetric

LOG1P = "log1p"
MIN_SKEW = 1.0  # below this the tail is too light for the log to matter: not even tried
MAX_ROWS = 20_000  # the comparison fits on a sample: two quick fits, not two full ones
MAX_ROUNDS = 300  # and with a learning rate high enough to converge in that


def forward(name: str | None, y: np.ndarray) -> np.ndarray:
    return np.log1p(y) if name == LOG1P else y


def inverse(name: str | None, values: np.ndarray) -> np.ndarray:
    return np.expm1(values) if name == LOG1P else values


def transformed(data: TrainingData, name: str | None) -> TrainingData:
    """The same rows with the target on the given scale (the data remembers which)."""
    if name is None:
        return data
    return replace(data, y_train=forward(name, data.y_train), y_valid=forward(name, data.y_valid),
                   target_transform=name)  # fmt: skip


def log_candidate(y: np.ndarray) -> bool:
    """Non-negative (log1p is defined and monotone) and right-skewed."""
    y = np.asarray(y, dtype="float64")
    return len(y) > 2 and float(np.min(y)) >= 0.0 and float(skew(y)) >= MIN_SKEW


def choose(
    data: TrainingData, metric: TuningMetric, *, family, config: dict, options, setting: str
) -> dict:  # fmt: skip
    """{"transform": "log1p" | None, "reason": ..., scores}: the scale the search uses.

    setting is the spec's (auto, none, log1p). family and config: a default configuration
    of one of the searched families; options: its FitOptions.
    """
    if data.task != "regression" or setting == "none":
        return {"transform": None, "reason": "not a regression" if data.task != "regression"
                else "train.target_transform: none"}  # fmt: skip
    if setting == LOG1P:
        if float(np.min(data.y_train)) < 0:
            from mlbatch.errors import BadInput

            raise BadInput("train.target_transform: log1p needs a target without negative values")
        return {"transform": LOG1P, "reason": "train.target_transform: log1p"}
    if not log_candidate(data.y_train):
        return {"transform": None, "reason": f"target not skewed and non-negative "
                f"(skew {float(skew(data.y_train)):.2f}, min {float(np.min(data.y_train)):g})"}
    started = time.time()
    sample = _sample(data)
    scores = {}
    for name in (None, LOG1P):
        fit = family.fit(config, transformed(sample, name), options)
        predictions = inverse(name, family.predict(fit.model, sample.x_valid))
        scores[name or "none"] = metric.score(sample.y_valid, predictions, 0)
    chosen = LOG1P if metric.better(scores[LOG1P], scores["none"]) else None
    return {
        "transform": chosen, "family": family.name, "skew": float(skew(data.y_train)),
        f"valid_{metric.name}": scores, "seconds": round(time.time() - started, 3),
        "reason": f"{metric.name} on the validation split with a default {family.name}: "
                  f"{scores[LOG1P]:.5g} on the log scale, {scores['none']:.5g} on the original",
    }  # fmt: skip


def _sample(data: TrainingData) -> TrainingData:
    """At most MAX_ROWS training rows (the same ones every time), every validation row."""
    if len(data.y_train) <= MAX_ROWS:
        return data
    rows = np.sort(np.random.default_rng(0).choice(len(data.y_train), MAX_ROWS, replace=False))
    return replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])
