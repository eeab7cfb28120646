"""The finalists (train.cv: finalists): each family's best trials and its portfolio's
defaults, fitted again on the other CV folds and ranked on those folds' validation rows,
which chose nothing before; the search's portfolio trials are known as such."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import finalists
from mlbatch_jobs.train.data import SearchData, TrainingData
from mlbatch_jobs.train.final_model import Candidate
from mlbatch_jobs.train.metrics import tuning_metric
from mlbatch_jobs.train.models import FitOptions
from mlbatch_jobs.train.search import portfolio_points, trial_record


def candidate(trial_id: str, family: str, valid: float, origin: str = "search",
              config: dict | None = None, fit_s: float = 0.1) -> Candidate:  # fmt: skip
    trial = {"trial_id": trial_id, "family": family, "valid": valid, "roc_auc": valid,
             "origin": origin, "config": config or {}, "fit_s": fit_s, "cpus": 1}  # fmt: skip
    return Candidate(trial, Path("."), np.empty(0))


def test_each_familys_best_goes_first_then_the_portfolio_then_the_rest():
    ranked = [candidate("x1", "xgboost", 0.90), candidate("x2", "xgboost", 0.89),
              candidate("l1", "lightgbm", 0.88), candidate("xp", "xgboost", 0.80, "portfolio"),
              candidate("lp", "lightgbm", 0.70, "portfolio")]  # fmt: skip
    leaderboard = [{"family": "xgboost", "trial_id": "x1"}, {"family": "lightgbm", "trial_id": "l1"}]

    ordered = finalists.order(ranked, leaderboard)

    assert [c.trial["trial_id"] for c in ordered] == ["x1", "l1", "xp", "lp", "x2"]


def folds_of(rows: int = 900, k: int = 3, seed: int = 0) -> SearchData:
    """A binary table whose label follows two of four features, in k folds (the last one
    the main train/valid split, as features writes them)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + 0.7 * x[:, 1] + rng.normal(0, 0.8, rows) > 0).astype("int64")
    chunks = np.array_split(np.arange(rows), k)
    splits = []
    for chunk in chunks:
        train = np.setdiff1d(np.arange(rows), chunk)
        splits.append(TrainingData("binary", ["a", "b", "c", "d"], [], [0, 1], x[train],
                                   y[train], x[chunk], y[chunk]))  # fmt: skip
    return SearchData(splits[-1], splits[:-1])


def test_finalists_are_scored_out_of_fold_and_ranked_there():
    data = folds_of()
    metric = tuning_metric("binary", None)
    # A strong configuration the main split ranked last, a weak one it ranked first: the
    # other folds' rows decide.
    weak = candidate("weak", "lightgbm", 0.99, config={"num_leaves": 2, "learning_rate": 0.001,
                                                        "min_child_samples": 400})  # fmt: skip
    strong = candidate("strong", "lightgbm", 0.50, "portfolio", config={"num_leaves": 8})
    linear = candidate("linear", "linear", 0.70, config={"C": 1.0})
    options = FitOptions(metric=metric, max_rounds=200, early_stopping_rounds=20)

    rescored = finalists.rescore([weak, strong, linear], data, options, threads=2,
                                 deadline=time.time() + 120)  # fmt: skip

    assert [c.trial["trial_id"] for c in rescored.candidates][-1] == "weak"
    assert rescored.record["left_out"] == []
    rows = sum(len(f.y_valid) for f in data.folds)
    assert rescored.record["rows"] == rows == len(rescored.targets) == 600
    np.testing.assert_array_equal(rescored.targets, np.concatenate([f.y_valid for f in data.folds]))
    for c in rescored.candidates:
        assert len(c.predictions) == rows and len(c.trial["finalist_fold_scores"]) == 2
        assert c.trial["finalist_score"] == pytest.approx(
            metric.score(rescored.targets, c.predictions, 2))
    scores = [c.trial["finalist_score"] for c in rescored.candidates]
    assert scores == sorted(scores, reverse=True)
    assert rescored.candidates[0].trial["valid"] != 0.99  # not the search's own ranking


def test_a_finalist_that_would_not_finish_before_the_deadline_is_left_out():
    data = folds_of()
    metric = tuning_metric("binary", None)
    slow = candidate("slow", "lightgbm", 0.9, config={"num_leaves": 8}, fit_s=3600.0)
    quick = candidate("quick", "linear", 0.8, config={"C": 1.0})
    options = FitOptions(metric=metric, max_rounds=50)

    rescored = finalists.rescore([slow, quick], data, options, threads=1,
                                 deadline=time.time() + 60)  # fmt: skip

    assert [c.trial["trial_id"] for c in rescored.candidates] == ["quick"]
    assert rescored.record["left_out"] == ["slow"]
    late = finalists.rescore([quick], data, options, threads=1, deadline=time.time() - 1)
    assert late.candidates == [] and late.record["left_out"] == ["quick"]


class Result:
    """What Tune hands back for one trial, as trial_record reads it."""

    def __init__(self, config: dict):
        self.config, self.error, self.checkpoint = config, None, None
        self.metrics = {"trial_id": "t", "final": True, "roc_auc": 0.8}


def test_a_trial_of_a_portfolio_configuration_is_recorded_as_one():
    spec = TrainSpec()
    data = folds_of()
    points = portfolio_points("lightgbm", data, spec)
    fixed = {"objective": "binary"}  # Tune's config also holds the space's fixed values
    tuned = {**points[1], "learning_rate": points[1]["learning_rate"] * 1.5}

    assert trial_record("lightgbm", Result({**points[1], **fixed}), "roc_auc", points)[
        "origin"] == "portfolio"  # fmt: skip
    assert trial_record("lightgbm", Result(tuned), "roc_auc", points)["origin"] == "search"
    assert trial_record("lightgbm", Result(points[0]), "roc_auc")["origin"] == "search"
    assert TrainSpec().cv == "trials"
    assert TrainSpec(cv=True).cv == "trials" and TrainSpec(cv=False).cv == "off"  # older specs
