"""The scikit-learn baselines that show what boosting adds: a linear model behind its own
fitted tail (one-hot codes, scaled numbers), and a random forest grown tree by tree."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import sklearn
from ray import tune
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from mlbatch_jobs.train import sklearn_io
from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.models import Curve, Fit, FitOptions, report_due

ONE_HOT_MAX_CATEGORIES = 50  # rarer codes share one column; keeps a linear model small
TREES_PER_ROUND = 1  # a forest's "round" is one tree: report_every trees per report


class LinearFamily:
    """Logistic regression (classification) or ridge regression, one fit, no rounds."""

    name = "linear"
    model_file = "model.skops"
    uses_rounds = False
    gpu = False

    def default_space(self, task: str) -> dict:
        if task == "regression":
            return {"alpha": tune.loguniform(1e-3, 1e3)}
        return {"C": tune.loguniform(1e-3, 1e2), "class_weight": tune.choice(["none", "balanced"])}

    def parameter_names(self, task: str) -> set[str]:
        estimator = Ridge() if task == "regression" else LogisticRegression()
        return set(estimator.get_params())

    def fit(self, config: dict, data: TrainingData, options: FitOptions) -> Fit:
        if data.task == "regression":
            estimator = Ridge(**config)
        else:
            settings = {**config, "class_weight": _none(config.get("class_weight"))}
            # A looser tolerance than scikit-learn's: a baseline need not converge to the
            # fourth decimal, and lbfgs on 10^5 one-hot rows is minutes on one thread.
            estimator = LogisticRegression(
                max_iter=300, tol=1e-3, random_state=options.seed, **settings
            )
        model = Pipeline([("tail", linear_tail(data)), ("model", estimator)])
        with threadpool_limits(options.threads):
            model.fit(data.x_train, data.y_train)
        x_sample, y_sample = data.train_sample()
        metric = options.metric
        curve = Curve(
            rounds=[1],
            train=[metric.score(y_sample, sklearn_io.predict(model, x_sample), data.num_classes)],
            valid=[metric.score(data.y_valid, sklearn_io.predict(model, data.x_valid),
                                data.num_classes)],
        )  # fmt: skip
        return Fit(model, estimator.get_params(), 0, 1, curve)

    def predict(self, model: Pipeline, x: np.ndarray) -> np.ndarray:
        return sklearn_io.predict(model, x)

    def save(self, fit: Fit, folder: Path) -> Path:
        return sklearn_io.save_model(fit.model, folder / self.model_file)

    def load(self, path: Path) -> Pipeline:
        return sklearn_io.load_model(path)

    @property
    def version(self) -> str:
        return sklearn.__version__


def linear_tail(data: TrainingData) -> ColumnTransformer:
    """One-hot for the categorical codes, standard scaling for the rest: fitted with the model."""
    numeric = [i for i in range(len(data.features)) if i not in data.categorical]
    one_hot = OneHotEncoder(
        handle_unknown="infrequent_if_exist", max_categories=ONE_HOT_MAX_CATEGORIES
    )
    return ColumnTransformer(
        [("one_hot", one_hot, data.categorical), ("scale", StandardScaler(), numeric)]
    )


class RandomForestFamily:
    """A random forest, grown a few trees at a time so ASHA can stop a weak one early."""

    name = "random_forest"
    model_file = "model.skops"
    uses_rounds = True
    gpu = False

    def default_space(self, task: str) -> dict:
        # Bounded so a tree stays cheap on large splits: subsampled rows, limited depth.
        return {
            "n_estimators": tune.randint(50, 301),
            "max_depth": tune.randint(6, 17),
            "min_samples_leaf": tune.lograndint(5, 100),
            "max_features": tune.uniform(0.2, 1.0),
            "max_samples": tune.uniform(0.1, 0.8),
        }

    def parameter_names(self, task: str) -> set[str]:
        return set(RandomForestRegressor().get_params()) - {"warm_start", "n_jobs"}

    def fit(self, config: dict, data: TrainingData, options: FitOptions) -> Fit:
        settings = dict(config)
        trees = min(int(settings.pop("n_estimators", 100)), options.max_rounds)
        kind = RandomForestRegressor if data.task == "regression" else RandomForestClassifier
        forest = kind(
            n_estimators=0, warm_start=True, n_jobs=options.threads,
            random_state=options.seed, **settings,
        )  # fmt: skip
        x_sample, y_sample = data.train_sample()
        sums = {"train": 0.0, "valid": 0.0}
        curve = Curve()
        step = options.report_every * TREES_PER_ROUND
        while forest.n_estimators < trees:
            grown = forest.n_estimators
            forest.n_estimators = min(grown + step, trees)
            forest.fit(data.x_train, data.y_train)
            new = forest.estimators_[grown:]  # only the new trees: the sums grow incrementally
            sums["train"] = sums["train"] + _tree_sum(new, x_sample, data.task)
            sums["valid"] = sums["valid"] + _tree_sum(new, data.x_valid, data.task)
            n = forest.n_estimators
            score = options.metric.score(data.y_valid, _mean(sums["valid"], n), data.num_classes)
            curve.rounds.append(n)
            curve.valid.append(score)
            curve.train.append(
                options.metric.score(y_sample, _mean(sums["train"], n), data.num_classes)
            )
            if report_due(n, options):
                options.on_rounds(n, score)
            if options.deadline and time.time() >= options.deadline:
                break
        forest.set_params(warm_start=False)  # a loaded forest refits from scratch
        model = Pipeline([("model", forest)])
        return Fit(model, forest.get_params(), forest.n_estimators - 1, forest.n_estimators, curve)

    def predict(self, model: Pipeline, x: np.ndarray) -> np.ndarray:
        return sklearn_io.predict(model, x)

    def save(self, fit: Fit, folder: Path) -> Path:
        return sklearn_io.save_model(fit.model, folder / self.model_file)

    def load(self, path: Path) -> Pipeline:
        return sklearn_io.load_model(path)

    @property
    def version(self) -> str:
        return sklearn.__version__


def _tree_sum(trees: list, x: np.ndarray, task: str) -> np.ndarray:
    if task == "regression":
        return np.sum([tree.predict(x) for tree in trees], axis=0)
    return np.sum([tree.predict_proba(x) for tree in trees], axis=0)


def _mean(total: np.ndarray, trees: int) -> np.ndarray:
    """A forest's prediction from the sum over its trees (class 1 alone for binary)."""
    mean = total / trees
    return mean[:, 1] if mean.ndim == 2 and mean.shape[1] == 2 else mean


def _none(value):
    """Tune's choices are strings in trials.parquet: "none" stands for None."""
    return None if value == "none" else value
