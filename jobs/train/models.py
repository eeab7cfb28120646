"""The model families: native parameters, fitting with early stopping, prediction, saving.

Every family fits on the training split, stops early on the validation split and can be
cut short by a deadline (the search's time budget); models are saved in the library's own
format, never pickled.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import xgboost

from mlbatch_jobs.train.data import TrainingData

MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 50


@dataclass(frozen=True)
class Fit:
    """A fitted booster and where its validation score peaked."""

    booster: Any
    params: dict  # the library's own parameters, as passed to it
    best_iteration: int  # 0-based round with the best validation score
    rounds: int  # rounds trained before early stopping (or the deadline) ended it


def native_feature_names(features: list[str]) -> list[str]:
    """Names both libraries accept (XGBoost rejects [ ] <, LightGBM JSON characters), unique."""
    names: list[str] = []
    for feature in features:
        name = re.sub(r"[^0-9A-Za-z_.-]", "_", feature) or "feature"
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{name}_{n}"
        names.append(candidate)
    return names


class XGBoostFamily:
    name = "xgboost"
    model_file = "model.json"  # XGBoost's JSON model format
    objectives = {"binary": "binary:logistic", "multiclass": "multi:softprob",
                  "regression": "reg:squarederror"}  # fmt: skip
    eval_metrics = {"binary": "auc", "multiclass": "mlogloss", "regression": "rmse"}

    def params(self, config: dict, data: TrainingData, *, threads: int, seed: int) -> dict:
        params = {
            "objective": self.objectives[data.task], "eval_metric": self.eval_metrics[data.task],
            "tree_method": "hist", "nthread": threads, "seed": seed, **config,
        }  # fmt: skip
        if data.task == "multiclass":
            params["num_class"] = data.num_classes
        return params

    def fit(
        self, config: dict, data: TrainingData, *, threads: int, seed: int,
        deadline: float | None = None, max_rounds: int = MAX_ROUNDS,
    ) -> Fit:  # fmt: skip
        params = self.params(config, data, threads=threads, seed=seed)
        names = native_feature_names(data.features)
        train = xgboost.DMatrix(data.x_train, data.y_train, feature_names=names, nthread=threads)
        valid = xgboost.DMatrix(data.x_valid, data.y_valid, feature_names=names, nthread=threads)
        # Early stopping first: XGBoost stops asking callbacks once one says stop, and the
        # best round must be recorded even when the deadline ends the first one.
        callbacks = [xgboost.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS)]
        if deadline:
            callbacks.append(_XGBoostDeadline(deadline))
        booster = xgboost.train(
            params, train, num_boost_round=max_rounds, evals=[(valid, "valid")],
            verbose_eval=False, callbacks=callbacks,
        )  # fmt: skip
        return Fit(booster, params, booster.best_iteration, booster.num_boosted_rounds())

    def predict(self, fit: Fit, x: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 (binary), of each class (multiclass), or values."""
        matrix = xgboost.DMatrix(x, feature_names=fit.booster.feature_names)
        return fit.booster.predict(matrix, iteration_range=(0, fit.best_iteration + 1))

    def save(self, fit: Fit, folder: Path) -> Path:
        """Only the rounds up to the best, so the saved model predicts as it was scored."""
        path = folder / self.model_file
        fit.booster[: fit.best_iteration + 1].save_model(path)
        return path

    @property
    def version(self) -> str:
        return xgboost.__version__


class _XGBoostDeadline(xgboost.callback.TrainingCallback):
    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def after_iteration(self, model, epoch, evals_log) -> bool:
        return time.time() >= self.deadline  # True stops training; early stopping kept the best


class LightGBMFamily:
    name = "lightgbm"
    model_file = "model.txt"  # LightGBM's text model format
    objectives = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    eval_metrics = {"binary": "auc", "multiclass": "multi_logloss", "regression": "rmse"}

    def params(self, config: dict, data: TrainingData, *, threads: int, seed: int) -> dict:
        params = {
            "objective": self.objectives[data.task], "metric": self.eval_metrics[data.task],
            "num_threads": threads, "seed": seed, "verbosity": -1,
            "bagging_freq": 1,  # subsample only takes effect with bagging on
            **config,
        }  # fmt: skip
        if data.task == "multiclass":
            params["num_class"] = data.num_classes
        return params

    def fit(
        self, config: dict, data: TrainingData, *, threads: int, seed: int,
        deadline: float | None = None, max_rounds: int = MAX_ROUNDS,
    ) -> Fit:  # fmt: skip
        params = self.params(config, data, threads=threads, seed=seed)
        names = native_feature_names(data.features)
        # Negative codes (-1, unknown or missing) are what LightGBM treats as missing.
        train = lightgbm.Dataset(
            data.x_train, label=data.y_train, feature_name=names,
            categorical_feature=data.categorical, params={"verbosity": -1},
        )  # fmt: skip
        valid = lightgbm.Dataset(data.x_valid, label=data.y_valid, reference=train)
        history: dict = {}
        callbacks = [
            lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False),
            lightgbm.record_evaluation(history),
        ]
        if deadline:
            callbacks.append(_lightgbm_deadline(deadline, history, params["metric"]))
        booster = lightgbm.train(
            params, train, num_boost_round=max_rounds, valid_sets=[valid], valid_names=["valid"],
            callbacks=callbacks,
        )  # fmt: skip
        # LightGBM counts best_iteration from 1, and keeps only the rounds up to the best.
        trained = len(history["valid"][params["metric"]])
        return Fit(booster, params, booster.best_iteration - 1, trained)

    def predict(self, fit: Fit, x: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 (binary), of each class (multiclass), or values."""
        return fit.booster.predict(x, num_iteration=fit.best_iteration + 1)

    def save(self, fit: Fit, folder: Path) -> Path:
        """Only the rounds up to the best, so the saved model predicts as it was scored."""
        path = folder / self.model_file
        fit.booster.save_model(path, num_iteration=fit.best_iteration + 1)
        return path

    @property
    def version(self) -> str:
        return lightgbm.__version__


def _lightgbm_deadline(deadline: float, history: dict, metric: str):
    """A callback that stops at the deadline, keeping the best round so far."""

    def stop_at_deadline(env) -> None:
        if time.time() < deadline:
            return
        scores = history["valid"][metric]
        higher_is_better = env.evaluation_result_list[0][3]
        best = int(np.argmax(scores) if higher_is_better else np.argmin(scores))
        raise lightgbm.callback.EarlyStopException(best, env.evaluation_result_list)

    stop_at_deadline.order = 40  # after record_evaluation (20) and early stopping (30)
    return stop_at_deadline


FAMILIES: dict[str, XGBoostFamily | LightGBMFamily] = {
    family.name: family for family in (XGBoostFamily(), LightGBMFamily())
}
