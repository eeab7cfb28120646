"""The search's use of its budget (portfolio first, the budget ends it, ASHA's first rung,
folds compared alike), the greedy ensemble (never worse than its best member, saved and
scored like any model), and the target's scale for skewed regression targets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evaluate_fixture import write_features
from ray.tune.search.sample import Domain

from mlbatch import scoring
from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import ensemble, target_transform
from mlbatch_jobs.train.data import TrainingData, training_data
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import tuning_metric
from mlbatch_jobs.train.models import FitOptions
from mlbatch_jobs.train.portfolio import PORTFOLIO, portfolio
from mlbatch_jobs.train.search import (
    asha,
    same_folds,
    searcher_for,
    sort_across_families,
    trial_limit,
)
from mlbatch_jobs.train.spaces import search_space


def suggestions(family: str, task: str, spec: TrainSpec, count: int) -> tuple[list, list]:
    space = search_space(family, task, spec.search_spaces.get(family))
    points = portfolio(family, space)
    searcher = searcher_for(spec, points)
    metric = tuning_metric(task, None)
    searcher.set_search_properties(metric.name, metric.mode, space)
    return points, [searcher.suggest(f"t{n}") for n in range(count)]


@pytest.mark.parametrize("search", ["tpe", "random"])
@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_the_portfolio_is_evaluated_first_then_the_searcher_takes_over(family, search):
    points, suggested = suggestions(family, "binary", TrainSpec(search=search), 5)

    assert points and len(points) == len(PORTFOLIO[family])
    assert all(s == pytest.approx(p) for s, p in zip(suggested, points, strict=False))
    assert suggested[len(points)] not in points  # then the searcher's own proposals
    assert PORTFOLIO[family][0]["learning_rate"] <= 0.1  # a moderate start, not 0.3


def test_classification_tries_lightgbm_with_random_thresholds_regression_does_not():
    # AutoGluon's LightGBMXT beat LightGBM's defaults on every classification table of the
    # quality benchmark and lost on every regression one (docs/train.md).
    binary = portfolio("lightgbm", search_space("lightgbm", "binary"))
    regression_space = search_space("lightgbm", "regression")
    regression = portfolio("lightgbm", regression_space)

    assert [p["extra_trees"] for p in binary] == [False, True, False, False]
    assert {k: v for k, v in binary[1].items() if k != "extra_trees"} == pytest.approx(
        {k: v for k, v in binary[0].items() if k != "extra_trees"})  # the defaults otherwise
    assert "extra_trees" not in regression_space
    assert len(regression) == len(PORTFOLIO["lightgbm"]) - 1  # the same point, tried once


def test_the_portfolio_stays_within_the_spec_ranges_and_fixed_values():
    spec = TrainSpec(search_spaces={"xgboost": {
        "max_depth": {"type": "int", "low": 2, "high": 5}, "reg_alpha": 0.5,
        "gamma": {"type": "uniform", "low": 0.0, "high": 2.0},
    }})  # fmt: skip
    space = search_space("xgboost", "regression", spec.search_spaces["xgboost"])
    points = portfolio("xgboost", space)
    searched = {k for k, v in space.items() if isinstance(v, Domain)}

    assert all(set(p) == searched for p in points)  # what Optuna's warm start requires
    assert [p["max_depth"] for p in points] == [5, 4, 5]  # 6 and 8 moved to the bound
    assert all(p["gamma"] == 1.0 for p in points)  # unknown to the portfolio: the middle
    _, suggested = suggestions("xgboost", "regression", spec, 3)
    assert [s["max_depth"] for s in suggested] == [5, 4, 5]


def test_the_budget_not_a_trial_count_ends_the_search_and_the_baseline_is_capped():
    spec = TrainSpec()
    assert spec.num_samples is None
    assert trial_limit("xgboost", spec) == trial_limit("lightgbm", spec) == -1  # Tune: no limit
    assert trial_limit("linear", spec) == 4
    assert trial_limit("xgboost", TrainSpec(num_samples=3)) == 3  # a spec may still cap it
    assert trial_limit("linear", TrainSpec(num_samples=2)) == 2


def test_asha_first_rung_leaves_slow_learners_time():
    rungs = [milestone for milestone, _ in asha(TrainSpec())._brackets[0]._rungs]
    assert min(rungs) >= 0.2 * TrainSpec().max_rounds
    rungs = [m for m, _ in asha(TrainSpec(max_rounds=100, report_every=10))._brackets[0]._rungs]
    assert min(rungs) == 30  # never before three reports


def trial(trial_id: str, family: str, scores: list[float]) -> dict:
    return {"trial_id": trial_id, "family": family, "cv_scores": scores,
            "roc_auc": float(np.mean(scores)), "status": "ok"}  # fmt: skip


def test_cv_means_are_only_compared_over_the_same_folds():
    # b met the budget's end after one (easy) fold: its mean is higher, but not comparable.
    completed = [trial("b", "x", [0.95]), trial("a", "x", [0.80, 0.82, 0.81])]
    assert [t["trial_id"] for t in same_folds(completed)] == ["a"]

    # Across families: the common first folds decide, not the means over different folds.
    rows = [trial("p", "x", [0.90]), trial("q", "y", [0.85, 0.99, 0.99])]
    ranked = sort_across_families(rows, tuning_metric("binary", None))
    assert [r["trial_id"] for r in ranked] == ["p"] + ["q"]
    assert all(r["selection_folds"] == 1 for r in ranked)


def test_the_greedy_ensemble_is_never_worse_than_its_best_member():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    # Two models with independent errors, a third much worse: averaging the first two wins.
    candidates = [y + rng.normal(0, 0.5, 400), y + rng.normal(0, 0.5, 400),
                  y + rng.normal(0, 2.0, 400)]  # fmt: skip
    rmse = tuning_metric("regression", None)

    def score(p):
        return rmse.score(y, p, 0)

    chosen = ensemble.select(candidates, score, higher_is_better=False)
    singles = [score(p) for p in candidates]
    assert chosen.score <= min(singles) and chosen.single == min(singles)
    assert set(chosen.members) >= {0, 1} and chosen.weights.sum() == pytest.approx(1.0)
    assert chosen.score == pytest.approx(score(ensemble.blend(candidates, chosen.weights)))

    # One model far ahead of the rest: the ensemble is that model alone.
    alone = ensemble.select([y + 0.01, y + 3.0, y - 3.0], score, higher_is_better=False)
    assert alone.members == [0]
    for _ in range(5):  # by construction, on any candidates
        noisy = [y + rng.normal(0, rng.uniform(0.1, 2), 400) for _ in range(4)]
        picked = ensemble.select(noisy, score, higher_is_better=False)
        assert picked.score <= min(score(p) for p in noisy) + 1e-12


def prepared(folder, task: str) -> TrainingData:
    schema = write_features(folder, task, rows=600, seed=3)
    splits = {n: pd.read_parquet(folder / "splits" / f"{n}.parquet") for n in ("train", "valid")}
    return training_data(schema, splits["train"], splits["valid"])


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_an_ensemble_round_trips_through_save_load_and_scoring_raw_rows(tmp_path, task):
    data = prepared(tmp_path, task)
    metric = tuning_metric(task, None)
    members, predictions = [], []
    test = pd.read_parquet(tmp_path / "splits" / "test.parquet")
    x_test = test[data.features].to_numpy("float64")
    for name, config in (("lightgbm", {"num_leaves": 8}), ("linear", {})):
        family = load_family(name)
        fit = family.fit(config, data, FitOptions(metric=metric, max_rounds=50))
        (tmp_path / "fits" / name).mkdir(parents=True)
        path = family.save(fit, tmp_path / "fits" / name)
        members.append({"family": name, "path": path, "weight": 0.7 if name == "lightgbm" else 0.3,
                        "trial_id": name, "target_transform": None})  # fmt: skip
        predictions.append(family.predict(fit.model, x_test))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model_file = ensemble.save_ensemble(model_dir, members).name
    info = {"family": "ensemble", "model_file": model_file, "task": task,
            "classes": data.classes, "features": data.features}  # fmt: skip
    (model_dir / "model_info.json").write_text(json.dumps(info))

    saved = json.loads((model_dir / "ensemble.json").read_text())
    assert [m["model_file"] for m in saved["members"]] == [
        "members/0-lightgbm/model.txt", "members/1-linear/model.skops"]  # native, no pickle
    scorer = scoring.load_scorer(tmp_path)  # the path evaluate and predict take
    raw = pd.read_parquet(tmp_path / "raw" / "test.parquet")
    expected = ensemble.blend(predictions, [0.7, 0.3])
    np.testing.assert_allclose(scorer.predict(raw), expected, rtol=1e-6)
    frame = scorer.prediction_frame(raw, keep=["__row_id"])
    assert len(frame) == len(raw) and "prediction" in frame


def regression_data(kind: str, rows: int = 1500, seed: int = 0) -> TrainingData:
    """Rows whose target follows three features, split 70/30: `lognormal`, a price-like
    target (multiplicative effects: additive on the log scale), or `normal`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    signal = x[:, 0] + 0.8 * x[:, 1] + 0.6 * x[:, 2] + rng.normal(0, 0.3, rows)
    y = np.exp(3.0 + signal) if kind == "lognormal" else 100.0 + 10.0 * signal
    cut = int(0.7 * rows)
    return TrainingData("regression", ["a", "b", "c"], [], None, x[:cut], y[:cut], x[cut:],
                        y[cut:])  # fmt: skip


def choose_scale(data: TrainingData) -> dict:
    metric = tuning_metric("regression", None)
    options = FitOptions(metric=metric, max_rounds=100, early_stopping_rounds=20)
    config = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 10}
    return target_transform.choose(data, metric, family=load_family("lightgbm"), config=config,
                                   options=options, setting="auto")  # fmt: skip


def test_a_log_normal_target_is_learned_on_the_log_scale_and_predicted_on_its_own(tmp_path):
    data = regression_data("lognormal")
    decision = choose_scale(data)
    assert decision["transform"] == "log1p", decision

    # Trained on log1p(y), saved with the transform named: scoring returns original values.
    family = load_family("lightgbm")
    metric = tuning_metric("regression", None)
    logged = target_transform.transformed(data, "log1p")
    fit = family.fit({"num_leaves": 15}, logged, FitOptions(metric=metric, max_rounds=100))
    family.save(fit, tmp_path)
    info = {"family": "lightgbm", "model_file": "model.txt", "task": "regression",
            "features": data.features, "classes": None, "target_transform": "log1p"}
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    model = scoring.load_model(tmp_path)
    predicted = model.predict(data.x_valid)
    assert np.median(predicted) == pytest.approx(np.median(data.y_valid), rel=0.3)
    np.testing.assert_allclose(predicted, np.expm1(family.predict(fit.model, data.x_valid)))


def test_a_symmetric_target_keeps_its_own_scale():
    decision = choose_scale(regression_data("normal"))
    assert decision["transform"] is None and "not skewed" in decision["reason"]
    shifted = regression_data("lognormal")
    shifted = TrainingData("regression", shifted.features, [], None, shifted.x_train,
                           shifted.y_train - 30, shifted.x_valid, shifted.y_valid - 30)
    assert choose_scale(shifted)["transform"] is None  # negative values: log never tried


def test_the_refit_takes_the_heaviest_members_first_and_keeps_what_the_budget_cannot(tmp_path):
    import time

    from mlbatch_jobs.train.data import SearchData
    from mlbatch_jobs.train.final_model import Candidate, FinalModel, refit_members

    data = prepared(tmp_path, "binary")
    metric = tuning_metric("binary", None)
    members = []
    for name, fit_s, weight in (("lightgbm", 0.2, 0.6), ("xgboost", 500.0, 0.3),
                                ("linear", 0.1, 0.1)):  # fmt: skip
        folder = tmp_path / "trials" / name
        folder.mkdir(parents=True)
        record = {"family": name, "trial_id": name, "config": {}, "best_iteration": 9,
                  "fit_s": fit_s, "cpus": 1}  # fmt: skip
        members.append((weight, Candidate(record, folder, np.zeros(len(data.y_valid)))))
    final = FinalModel(members)
    refit_members(final, SearchData(data), metric, TrainSpec(), tmp_path / "refit",
                  deadline=time.time() - 30)  # the search overran: only the grace is left

    assert [r["family"] for r in final.refit] == ["lightgbm", "linear"]  # by weight
    rows = len(data.y_train) + len(data.y_valid)
    assert all(r["rows"] == rows for r in final.refit)
    assert final.refit[0]["rounds"] == int(np.ceil(10 * rows / len(data.y_train)))
    # The member that would run far past the budget keeps its model trained on train alone.
    assert final.paths[1] == members[1][1].model_path
    assert final.paths[0].parent.name == "0-lightgbm" and final.paths[2].exists()
    assert "xgboost xgboost (estimated" in final.refit_skipped
