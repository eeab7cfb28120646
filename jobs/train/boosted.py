"""The boosted families, XGBoost and LightGBM: native early stopping, per-round curves and
reports, a deadline, GPUs where the library can use them."""

from __future__ import annotations

from pathlib import Path

import lightgbm
import numpy as np
import xgboost
from ray import tune

from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.models import Fit, FitOptions, native_feature_names, stop_due
from mlbatch_jobs.train.round_scores import RoundScores

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
            "eval_metric": options.metric.stopping("xgboost"),
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
        scores = RoundScores(options, data, "xgboost")
        callbacks: list = [
            xgboost.callback.EarlyStopping(
                rounds=options.early_stopping_rounds, data_name="valid",
                metric_name=options.metric.stopping("xgboost"),
            ),
            _XGBoostRounds(options, scores, sample, valid),
        ]  # fmt: skip
        history: dict = {}
        booster = xgboost.train(
            params, train, num_boost_round=options.max_rounds,
            evals=[(sample, "train"), (valid, "valid")], evals_result=history,
            verbose_eval=False, callbacks=callbacks,
        )  # fmt: skip
        best, trained = booster.best_iteration, booster.num_boosted_rounds()
        curve = scores.finish(trained, history, _cached(booster, sample, valid))
        return Fit(booster[: best + 1], params, best, trained, curve)

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

    def __init__(self, options: FitOptions, scores: RoundScores, *matrices: xgboost.DMatrix):
        super().__init__()
        self.options, self.scores, self.matrices = options, scores, matrices

    def after_iteration(self, model, epoch, evals_log) -> bool:
        rounds = epoch + 1
        self.scores.report(rounds, evals_log, _cached(model, *self.matrices))
        return stop_due(rounds, self.options)


def _cached(booster: xgboost.Booster, sample: xgboost.DMatrix, valid: xgboost.DMatrix):
    """The predictions XGBoost keeps for its evaluation sets, up to the current round."""
    return lambda: (booster.predict(sample), booster.predict(valid))


class LightGBMFamily:
    name = "lightgbm"
    model_file = "model.txt"  # LightGBM's text model format
    uses_rounds = True
    gpu = True  # where the build supports it: the search probes before using one
    objectives = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}

    def default_space(self, task: str) -> dict:
        space = {
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
        if task != "regression":
            # Random split thresholds (LightGBM's extra_trees) gave better test scores on
            # every classification table probed and worse RMSE on every regression one
            # (docs/train.md), so regression does not spend trials on them.
            space["extra_trees"] = tune.choice([False, True])
        return space

    def parameter_names(self, task: str) -> None:
        return None  # LightGBM takes (and warns about) any name

    def params(self, config: dict, data: TrainingData, options: FitOptions) -> dict:
        params = {
            "objective": self.objectives[data.task],
            "metric": options.metric.stopping("lightgbm"),
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
        scores = RoundScores(options, data, "lightgbm")
        callbacks = [
            _scoring_last_round(lightgbm.early_stopping(
                options.early_stopping_rounds, first_metric_only=True, verbose=False
            ), scores, history),
            lightgbm.record_evaluation(history),
            _lightgbm_rounds(options, scores, history),
        ]  # fmt: skip
        booster = lightgbm.train(
            params, train, num_boost_round=options.max_rounds, valid_sets=[sample, valid],
            valid_names=[LIGHTGBM_TRAIN_NAME, "valid"], callbacks=callbacks,
        )  # fmt: skip
        trained = len(history["valid"][options.metric.stopping("lightgbm")])
        # LightGBM counts best_iteration from 1; the text model keeps the rounds up to it.
        return Fit(booster, params, booster.best_iteration - 1, trained, scores.curve)

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


def _lightgbm_rounds(options: FitOptions, scores: RoundScores, history: dict):
    """A callback that reports every few rounds and stops at the deadline, keeping the best
    round so far (by the stopping metric)."""
    stopping = options.metric.stopping("lightgbm")

    def after_round(env) -> None:
        rounds = env.iteration + 1
        scores.report(rounds, _logged(history), lambda: _inner_predictions(env.model))
        if stop_due(rounds, options):
            scores.finish(rounds, _logged(history), lambda: _inner_predictions(env.model))
            values = history["valid"][stopping]
            higher_is_better = next(
                entry[3] for entry in env.evaluation_result_list
                if entry[0] == "valid" and entry[1] == stopping
            )  # fmt: skip
            best = int(np.argmax(values) if higher_is_better else np.argmin(values))
            raise lightgbm.callback.EarlyStopException(best, env.evaluation_result_list)

    after_round.order = 40  # after record_evaluation (20) and early stopping (30)
    return after_round


def _scoring_last_round(early_stopping, scores: RoundScores, history: dict):
    """LightGBM's early stopping, which also ends the last of max_rounds, scoring the round
    it ends on first: the booster lightgbm.train returns keeps only the best round."""

    def after_round(env) -> None:
        try:
            early_stopping(env)
        except lightgbm.callback.EarlyStopException:
            predictions = lambda: _inner_predictions(env.model)  # noqa: E731
            scores.finish(env.iteration + 1, _logged(history), predictions)
            raise

    after_round.order = early_stopping.order
    return after_round


def _logged(history: dict) -> dict:
    """LightGBM's per-round log under the names XGBoost's has (train: the sample)."""
    return {"train": history[LIGHTGBM_TRAIN_NAME], "valid": history["valid"]}


def _inner_predictions(booster: lightgbm.Booster) -> tuple[np.ndarray, np.ndarray]:
    """The predictions LightGBM keeps for its evaluation sets (sample, valid), as of the
    current round: what a custom metric is handed, so public API and no extra predict."""
    kept: list[np.ndarray] = []

    def keep(predictions: np.ndarray, _dataset) -> tuple[str, float, bool]:
        kept.append(predictions)
        return "kept", 0.0, True

    booster.eval_valid(feval=keep)
    sample, valid = kept
    return sample, valid
