"""The boosted families, XGBoost and LightGBM: native early stopping, per-round curves and
reports, a deadline, GPUs where the library can use them."""

from __future__ import annotations

from pathlib import Path

import lightgbm
import numpy as np
import xgboost
from ray import tune

from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.models import (
    Curve,
    Fit,
    FitOptions,
    native_feature_names,
    report_due,
    stop_due,
)

# LightGBM's early stopping skips the validation set named like the training data, so the
# training sample (followed for the overfitting curve) must carry that name.
LIGHTGBM_TRAIN_NAME = "training"


class XGBoostFamily:
    name = "xgboost"
    model_file = "model.json"  # XGBoost's JSON model format
    uses_rounds = True
    gpu = True
    objectives = {"binary": "binary:logistic", "multiclass": "multi:softprob",
                  "regression": "reg:squarederror"}  # fmt: skip

    def default_space(self, task: str) -> dict:
        return {
            "learning_rate": tune.loguniform(0.02, 0.3),
            "max_depth": tune.randint(3, 11),
            "min_child_weight": tune.loguniform(0.5, 50.0),
            "subsample": tune.uniform(0.5, 1.0),
            "colsample_bytree": tune.uniform(0.5, 1.0),
            "reg_lambda": tune.loguniform(1e-3, 10.0),
            "reg_alpha": tune.loguniform(1e-3, 10.0),
        }

    def parameter_names(self, task: str) -> None:
        return None  # XGBoost takes (and warns about) any name

    def params(self, config: dict, data: TrainingData, options: FitOptions) -> dict:
        params = {
            "objective": self.objectives[data.task],
            "eval_metric": _metrics(options, "xgboost"),
            "tree_method": "hist", "nthread": options.threads, "seed": options.seed,
            "device": options.device, **options.library_params, **config,
        }  # fmt: skip
        if data.task == "multiclass":
            params["num_class"] = data.num_classes
        return params

    def fit(self, config: dict, data: TrainingData, options: FitOptions) -> Fit:
        params = self.params(config, data, options)
        names = native_feature_names(data.features)
        threads = options.threads
        train = xgboost.DMatrix(data.x_train, data.y_train, feature_names=names, nthread=threads)
        x_sample, y_sample = data.train_sample()
        sample = xgboost.DMatrix(x_sample, y_sample, feature_names=names, nthread=threads)
        valid = xgboost.DMatrix(data.x_valid, data.y_valid, feature_names=names, nthread=threads)
        # Early stopping first: XGBoost stops asking callbacks once one says stop, and the
        # best round must be recorded even when the deadline ends the first one.
        callbacks: list = [
            xgboost.callback.EarlyStopping(
                rounds=options.early_stopping_rounds, data_name="valid",
                metric_name=options.metric.stopping("xgboost"),
            ),
            _XGBoostRounds(options, data.y_valid),
        ]  # fmt: skip
        history: dict = {}
        booster = xgboost.train(
            params, train, num_boost_round=options.max_rounds,
            evals=[(sample, "train"), (valid, "valid")], evals_result=history,
            verbose_eval=False, callbacks=callbacks,
        )  # fmt: skip
        best = booster.best_iteration
        native = options.metric.native("xgboost")
        curve = _curve(history["train"][native], history["valid"][native], options, data)
        return Fit(booster[: best + 1], params, best, booster.num_boosted_rounds(), curve)

    def predict(self, model: xgboost.Booster, x: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 (binary), of each class (multiclass), or values."""
        return model.predict(xgboost.DMatrix(x, feature_names=model.feature_names))

    def save(self, fit: Fit, folder: Path) -> Path:
        path = folder / self.model_file
        fit.model.save_model(path)
        return path

    def load(self, path: Path) -> xgboost.Booster:
        return xgboost.Booster(model_file=str(path))

    @property
    def version(self) -> str:
        return xgboost.__version__


class _XGBoostRounds(xgboost.callback.TrainingCallback):
    """Reports every few rounds, and stops at the deadline (early stopping kept the best)."""

    def __init__(self, options: FitOptions, y_valid: np.ndarray):
        super().__init__()
        self.options, self.y_valid = options, y_valid

    def after_iteration(self, model, epoch, evals_log) -> bool:
        rounds = epoch + 1
        if report_due(rounds, self.options):
            value = evals_log["valid"][self.options.metric.native("xgboost")][-1]
            self.options.on_rounds(rounds, self.options.metric.from_native(value, self.y_valid))
        return stop_due(rounds, self.options)


class LightGBMFamily:
    name = "lightgbm"
    model_file = "model.txt"  # LightGBM's text model format
    uses_rounds = True
    gpu = True  # where the build supports it: the search probes before using one
    objectives = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}

    def default_space(self, task: str) -> dict:
        return {
            "learning_rate": tune.loguniform(0.02, 0.3),
            "num_leaves": tune.lograndint(8, 256),
            "min_child_samples": tune.lograndint(5, 200),
            "min_child_weight": tune.loguniform(1e-3, 10.0),
            "subsample": tune.uniform(0.5, 1.0),
            "colsample_bytree": tune.uniform(0.5, 1.0),
            "reg_lambda": tune.loguniform(1e-3, 10.0),
            "reg_alpha": tune.loguniform(1e-3, 10.0),
            "cat_smooth": tune.loguniform(1.0, 100.0),  # native categorical splits' smoothing
        }

    def parameter_names(self, task: str) -> None:
        return None  # LightGBM takes (and warns about) any name

    def params(self, config: dict, data: TrainingData, options: FitOptions) -> dict:
        params = {
            "objective": self.objectives[data.task], "metric": _metrics(options, "lightgbm"),
            "num_threads": options.threads, "seed": options.seed, "verbosity": -1,
            "bagging_freq": 1,  # subsample only takes effect with bagging on
            "device_type": options.device, **options.library_params, **config,
        }  # fmt: skip
        if data.task == "multiclass":
            params["num_class"] = data.num_classes
        return params

    def fit(self, config: dict, data: TrainingData, options: FitOptions) -> Fit:
        params = self.params(config, data, options)
        names = native_feature_names(data.features)
        # Native categorical splits on the code columns; negative codes (-1, unknown or
        # missing) are what LightGBM treats as missing.
        train = lightgbm.Dataset(
            data.x_train, label=data.y_train, feature_name=names,
            categorical_feature=data.categorical, params={"verbosity": -1},
        )  # fmt: skip
        x_sample, y_sample = data.train_sample()
        sample = lightgbm.Dataset(x_sample, label=y_sample, reference=train)
        valid = lightgbm.Dataset(data.x_valid, label=data.y_valid, reference=train)
        history: dict = {}
        metric = options.metric.native("lightgbm")
        callbacks = [
            # The stopping metric is listed first (_metrics).
            lightgbm.early_stopping(
                options.early_stopping_rounds, first_metric_only=True, verbose=False
            ),
            lightgbm.record_evaluation(history),
            _lightgbm_rounds(options, history, data.y_valid),
        ]
        booster = lightgbm.train(
            params, train, num_boost_round=options.max_rounds, valid_sets=[sample, valid],
            valid_names=[LIGHTGBM_TRAIN_NAME, "valid"], callbacks=callbacks,
        )  # fmt: skip
        # LightGBM counts best_iteration from 1; the text model keeps the rounds up to it.
        train_curve = history[LIGHTGBM_TRAIN_NAME][metric]
        curve = _curve(train_curve, history["valid"][metric], options, data)
        trained = len(history["valid"][metric])
        return Fit(booster, params, booster.best_iteration - 1, trained, curve)

    def predict(self, model: lightgbm.Booster, x: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 (binary), of each class (multiclass), or values."""
        return model.predict(x)  # up to the best iteration, which the booster remembers

    def save(self, fit: Fit, folder: Path) -> Path:
        path = folder / self.model_file
        fit.model.save_model(path, num_iteration=fit.best_iteration + 1)
        return path

    def load(self, path: Path) -> lightgbm.Booster:
        return lightgbm.Booster(model_file=str(path))

    @property
    def version(self) -> str:
        return lightgbm.__version__


def _metrics(options: FitOptions, library: str) -> str | list[str]:
    """The per-round metrics: the stopping one first, then the tuning metric's own."""
    stopping, native = options.metric.stopping(library), options.metric.native(library)
    return native if stopping == native else [stopping, native]


def _lightgbm_rounds(options: FitOptions, history: dict, y_valid: np.ndarray):
    """A callback that reports every few rounds and stops at the deadline, keeping the best
    round so far (by the stopping metric)."""
    native, stopping = options.metric.native("lightgbm"), options.metric.stopping("lightgbm")

    def after_round(env) -> None:
        rounds = env.iteration + 1
        if report_due(rounds, options):
            value = history["valid"][native][-1]
            options.on_rounds(rounds, options.metric.from_native(value, y_valid))
        if stop_due(rounds, options):
            scores = history["valid"][stopping]
            higher_is_better = next(
                entry[3] for entry in env.evaluation_result_list
                if entry[0] == "valid" and entry[1] == stopping
            )  # fmt: skip
            best = int(np.argmax(scores) if higher_is_better else np.argmin(scores))
            raise lightgbm.callback.EarlyStopException(best, env.evaluation_result_list)

    after_round.order = 40  # after record_evaluation (20) and early stopping (30)
    return after_round


def _curve(train: list, valid: list, options: FitOptions, data: TrainingData) -> Curve:
    _, y_sample = data.train_sample()
    metric = options.metric
    return Curve(
        rounds=list(range(1, len(valid) + 1)),
        train=[metric.from_native(float(v), y_sample) for v in train],
        valid=[metric.from_native(float(v), data.y_valid) for v in valid],
    )
