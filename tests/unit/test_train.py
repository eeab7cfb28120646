"""The train stage without Ray: data, model families, metrics, spaces, resources, records."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from features_fixture import TASKS, write_features_outputs
from pydantic import ValidationError
from ray import tune
from ray.tune.search import Searcher

from mlbatch.errors import BadInput
from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import importance, sklearn_io
from mlbatch_jobs.train.data import TrainingData, training_data
from mlbatch_jobs.train.families import CLASSES, load_family
from mlbatch_jobs.train.metrics import tuning_metric
from mlbatch_jobs.train.models import FitOptions, native_feature_names
from mlbatch_jobs.train.ray_runtime import check_versions
from mlbatch_jobs.train.report import overfitting
from mlbatch_jobs.train.resources import check_gpu_requirement, plan_trials
from mlbatch_jobs.train.search import LaunchUntil, trial_record
from mlbatch_jobs.train.spaces import check_overrides, search_space

CONFIGS = {
    "linear": {},
    "random_forest": {"n_estimators": 30, "max_depth": 6},
    "xgboost": {"learning_rate": 0.2, "max_depth": 3},
    "lightgbm": {"learning_rate": 0.2, "num_leaves": 8, "min_child_samples": 5},
}
GOOD = {"binary": 0.85, "multiclass": 0.8, "regression": 15.0}  # roc_auc, log_loss, rmse


def prepared(tmp_path, task: str) -> TrainingData:
    folder = tmp_path / task
    schema = write_features_outputs(folder, task)
    splits = {n: pd.read_parquet(folder / "splits" / f"{n}.parquet") for n in ("train", "valid")}
    return training_data(schema, splits["train"], splits["valid"])


def test_training_data_follows_the_feature_schema(tmp_path):
    data = prepared(tmp_path, "multiclass")
    assert data.features == ["distance", "hour", "temp", "carrier"]
    assert data.categorical == [3]
    assert data.classes == ["high", "low", "mid"] and data.num_classes == 3
    assert data.x_train.shape == (420, 4) and data.x_valid.shape == (120, 4)
    assert data.merged().x_train.shape == (540, 4)


def test_training_data_names_a_missing_column(tmp_path):
    folder = tmp_path / "f"
    schema = write_features_outputs(folder, "binary")
    train = pd.read_parquet(folder / "splits" / "train.parquet").drop(columns="carrier")
    valid = pd.read_parquet(folder / "splits" / "valid.parquet")
    with pytest.raises(BadInput, match="train split lacks columns \\['carrier'\\]"):
        training_data(schema, train, valid)


def test_training_data_refuses_a_single_class_valid_split(tmp_path):
    folder = tmp_path / "f"
    schema = write_features_outputs(folder, "binary")
    train = pd.read_parquet(folder / "splits" / "train.parquet")
    valid = pd.read_parquet(folder / "splits" / "valid.parquet").assign(__target=1)
    with pytest.raises(BadInput, match="single class"):
        training_data(schema, train, valid)


def test_native_feature_names_are_safe_and_unique():
    names = native_feature_names(["temp [C]", "temp <C>", "a:b", "ok_name.1"])
    assert names == ["temp__C_", "temp__C__2", "a_b", "ok_name.1"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_family_trains_saves_and_predicts(tmp_path, name, task):
    data = prepared(tmp_path, task)
    family, metric = load_family(name), tuning_metric(task, None)
    reports = []
    options = FitOptions(metric=metric, report_every=10, on_rounds=lambda r, v: reports.append(r))
    fit = family.fit(CONFIGS[name], data, options)
    predictions = family.predict(fit.model, data.x_valid)
    score = metric.score(data.y_valid, predictions, data.num_classes)
    assert metric.better(score, GOOD[task]), (name, task, score)
    assert 0 <= fit.best_iteration < fit.rounds
    assert len(fit.curve.train) == len(fit.curve.valid) == len(fit.curve.rounds) >= 1
    if family.uses_rounds:
        assert reports and all(r % 10 == 0 for r in reports)

    path = family.save(fit, tmp_path)
    assert path.name == {"linear": "model.skops", "random_forest": "model.skops",
                         "xgboost": "model.json", "lightgbm": "model.txt"}[name]  # fmt: skip
    loaded = family.predict(family.load(path), data.x_valid)
    np.testing.assert_allclose(loaded, predictions, rtol=1e-6)
    shape = (len(data.y_valid), 3) if task == "multiclass" else (len(data.y_valid),)
    assert loaded.shape == shape


def test_linear_model_carries_its_fitted_one_hot_and_scaling_tail(tmp_path):
    data = prepared(tmp_path, "binary")
    family = load_family("linear")
    fit = family.fit({"C": 1.0}, data, FitOptions(metric=tuning_metric("binary", None)))
    tail = fit.model.named_steps["tail"]
    assert tail.named_transformers_["one_hot"].categories_[0].tolist() == [-1.0, 0, 1, 2, 3]
    assert tail.named_transformers_["scale"].mean_.shape == (3,)


def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path):
    import operator

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    skops.io.dump(FunctionTransformer(operator.neg).fit([[0.0]]), tmp_path / "model.skops")
    with pytest.raises(BadInput, match="outside the trusted list: \\['_operator.neg'\\]"):
        sklearn_io.load_model(tmp_path / "model.skops")


@pytest.mark.parametrize("name", ["random_forest", "xgboost", "lightgbm"])
def test_a_passed_deadline_stops_after_the_first_round(tmp_path, name):
    data = prepared(tmp_path, "binary")
    options = FitOptions(metric=tuning_metric("binary", None), deadline=time.time() - 1)
    fit = load_family(name).fit(CONFIGS[name], data, options)
    assert fit.rounds == (10 if name == "random_forest" else 1)


def weak_imbalanced_binary(seed: int = 3) -> TrainingData:
    """A faint signal, few positives and 200 validation rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1200, 8))
    y = (x[:, 0] * 0.6 + rng.normal(size=1200) > 2.1).astype(int)
    return TrainingData(task="binary", features=[f"f{i}" for i in range(8)], categorical=[],
                        classes=[0, 1], x_train=x[:1000], y_train=y[:1000],
                        x_valid=x[1000:], y_valid=y[1000:])  # fmt: skip


def valid_curves(name: str, params: dict, data: TrainingData, rounds: int) -> dict:
    """Per-round validation log loss and AUC of the same booster, trained without stopping."""
    import lightgbm
    import xgboost

    if name == "xgboost":
        history: dict = {}
        train = xgboost.DMatrix(data.x_train, data.y_train)
        valid = xgboost.DMatrix(data.x_valid, data.y_valid)
        xgboost.train({**params, "eval_metric": ["logloss", "auc"]}, train, rounds,
                      evals=[(valid, "valid")], evals_result=history)  # fmt: skip
        return {"log_loss": history["valid"]["logloss"], "auc": history["valid"]["auc"]}
    history = {}
    train = lightgbm.Dataset(data.x_train, data.y_train)
    valid = lightgbm.Dataset(data.x_valid, data.y_valid, reference=train)
    lightgbm.train({**params, "metric": ["binary_logloss", "auc"]}, train, rounds,
                   valid_sets=[valid], valid_names=["valid"],
                   callbacks=[lightgbm.record_evaluation(history)])  # fmt: skip
    return {"log_loss": history["valid"]["binary_logloss"], "auc": history["valid"]["auc"]}


@pytest.mark.parametrize("name", ["xgboost", "lightgbm"])
def test_auc_trials_stop_where_validation_log_loss_is_best(name):
    data = weak_imbalanced_binary()
    family, metric = load_family(name), tuning_metric("binary", None)
    config = {"learning_rate": 0.05, **({"max_depth": 3} if name == "xgboost" else {})}
    options = FitOptions(metric=metric, on_rounds=lambda rounds, value: None)
    fit = family.fit(config, data, options)
    curves = valid_curves(name, family.params(config, data, options), data, fit.rounds)
    best_log_loss = int(np.argmin(curves["log_loss"]))
    assert int(np.argmax(curves["auc"])) != best_log_loss  # the two would stop apart
    assert fit.best_iteration == best_log_loss
    assert fit.rounds == best_log_loss + 1 + options.early_stopping_rounds
    assert fit.curve.valid[-1] == pytest.approx(curves["auc"][-1], abs=1e-6)  # AUC is reported


def test_tuning_metrics_follow_task_and_spec():
    assert (tuning_metric("binary", None).name, tuning_metric("binary", None).mode) == (
        "roc_auc", "max",
    )  # fmt: skip
    assert tuning_metric("multiclass", None).mode == "min"
    assert tuning_metric("regression", "r2").mode == "max"
    with pytest.raises(BadInput, match="does not fit a regression task"):
        tuning_metric("regression", "roc_auc")
    accuracy, r2 = tuning_metric("binary", "accuracy"), tuning_metric("regression", "r2")
    assert accuracy.native("xgboost") is None and accuracy.stopping("xgboost") == "logloss"
    y = np.array([1.0, 2.0, 3.0])
    assert r2.native("lightgbm") == "rmse" and r2.from_native(np.sqrt(np.var(y)), y) == 0.0
    assert tuning_metric("multiclass", "log_loss").native("lightgbm") == "multi_logloss"
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    score = tuning_metric("multiclass", None).score(np.array([0, 1]), probabilities, 3)
    assert score == pytest.approx(-np.log(0.8))


def test_spec_ranges_replace_default_ones():
    spec = TrainSpec.model_validate({
        "models": ["xgboost", "linear"],
        "search_spaces": {"xgboost": {
            "max_depth": {"type": "int", "low": 2, "high": 4},
            "booster": {"type": "choice", "values": ["gbtree", "dart"]}, "gamma": 0.5,
        }},
    })  # fmt: skip
    space = search_space("xgboost", "binary", spec.search_spaces["xgboost"])
    assert isinstance(space["max_depth"], tune.search.sample.Integer)
    assert (space["max_depth"].lower, space["max_depth"].upper) == (2, 5)  # high included
    assert space["booster"].categories == ["gbtree", "dart"] and space["gamma"] == 0.5
    assert "learning_rate" in space  # defaults stay
    check_overrides("xgboost", "binary", spec.search_spaces["xgboost"])  # any name goes
    with pytest.raises(BadInput, match="'gamma' is not a parameter of the binary model"):
        check_overrides("linear", "binary", {"gamma": 1})


@pytest.mark.parametrize(
    ("train", "message"),
    [({"search_spaces": {"lightgbm": {}}, "models": ["xgboost"]}, "search_spaces for lightgbm"),
     ({"models": ["linear"], "resources": {"gpu": "required"}}, "no listed model uses a GPU"),
     ({"models": ["xgboost"], "search_spaces": {"xgboost": {"eta": {"type": "loguniform",
       "low": 0, "high": 1}}}}, "loguniform needs low > 0"),
     ({"models": ["xgboost", "xgboost"]}, "listed twice")],
)  # fmt: skip
def test_spec_mistakes_are_named(train, message):
    with pytest.raises(ValidationError, match=message):
        TrainSpec.model_validate(train)


XGBOOST, LIGHTGBM, LINEAR = (load_family(n) for n in ("xgboost", "lightgbm", "linear"))


def test_trials_run_one_thread_each_side_by_side_on_cpus():
    plan = plan_trials(XGBOOST, TrainSpec(num_samples=8), {"CPU": 4, "GPU": 0}, gpu_device=None)
    assert (plan.cpus, plan.gpus, plan.device, plan.concurrency) == (1, 0.0, "cpu", 4)
    spec = TrainSpec(num_samples=3, resources={"cpus_per_trial": 2}, max_concurrent_trials=1)
    plan = plan_trials(LINEAR, spec, {"CPU": 8, "GPU": 2}, gpu_device=None)
    assert (plan.cpus, plan.device, plan.concurrency) == (2, "cpu", 1)


def test_gpus_go_to_the_families_that_can_use_them():
    cluster = {"CPU": 16, "GPU": 2}
    plan = plan_trials(XGBOOST, TrainSpec(), cluster, gpu_device="cuda")
    assert (plan.cpus, plan.gpus, plan.device, plan.concurrency) == (8, 1.0, "cuda", 2)
    assert plan.ray_resources == {"cpu": 8, "gpu": 1.0}
    assert plan_trials(LIGHTGBM, TrainSpec(), cluster, gpu_device=None).device == "cpu"
    never = TrainSpec(resources={"gpu": "never"})
    assert plan_trials(XGBOOST, never, cluster, gpu_device="cuda").device == "cpu"
    half = TrainSpec(resources={"gpus_per_trial": 0.5})
    assert plan_trials(XGBOOST, half, cluster, gpu_device="cuda").concurrency == 4


def test_a_required_gpu_fails_clearly_without_one():
    required = TrainSpec(models=["xgboost"], resources={"gpu": "required"})
    check_gpu_requirement(required, {"CPU": 2, "GPU": 1})
    check_gpu_requirement(TrainSpec(), {"CPU": 2, "GPU": 0})
    with pytest.raises(BadInput, match="gpu is required, but the Ray cluster has no GPU"):
        check_gpu_requirement(required, {"CPU": 2, "GPU": 0})


def test_a_cluster_of_another_ray_or_python_is_refused():
    import platform

    import ray

    ours = platform.python_version()
    check_versions(ray.__version__, ours, address="ray://head:10001")
    with pytest.raises(BadInput, match="runs Ray 0.0.1 on Python"):
        check_versions("0.0.1", ours, address="ray://head:10001")
    with pytest.raises(BadInput, match="build the cluster from the train image"):
        check_versions(ray.__version__, "2.7.18", address="ray://head:10001")


class FixedSearcher(Searcher):
    def suggest(self, trial_id):
        return {"learning_rate": 0.1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


def test_no_trial_starts_after_the_cutoff():
    running = LaunchUntil(FixedSearcher(), max_concurrent=2, ends=lambda: time.time() + 60,
                          lead_s=4)  # fmt: skip
    assert running.suggest("a") == {"learning_rate": 0.1}
    ended = LaunchUntil(FixedSearcher(), max_concurrent=3, ends=lambda: time.time() + 3,
                        lead_s=4)  # fmt: skip
    assert ended.suggest("b") == {"learning_rate": 0.1}  # a family's first trial starts anyway
    assert ended.suggest("c") == Searcher.FINISHED


def test_trials_start_while_the_family_share_has_not_begun():
    # No trial has asked the clock yet (workers still starting): the share has not begun,
    # so nothing is past its cutoff; the concurrency limit alone holds launches back.
    waiting = LaunchUntil(FixedSearcher(), max_concurrent=2, ends=lambda: None, lead_s=4)
    assert waiting.suggest("a") == {"learning_rate": 0.1}
    assert waiting.suggest("b") == {"learning_rate": 0.1}
    assert waiting.suggest("c") is None  # two running: wait


def test_trial_records_tell_completed_stopped_and_failed_trials_apart():
    def record(metrics, error=None):
        result = SimpleNamespace(metrics=metrics, config={"max_depth": 3}, error=error)
        return trial_record("xgboost", result, "rmse")

    done = record({"rmse": 1.5, "rounds": 60, "final": True, "trial_id": "a", "node": "n1"})
    assert (done["status"], done["rmse"], done["rounds"], done["node"]) == ("ok", 1.5, 60, "n1")
    assert record({"rmse": 3.0, "rounds": 30, "final": False})["status"] == "early_stopped"
    assert record({})["status"] == "stopped"
    failed = record({}, error=ValueError("bad value\ntraceback"))
    assert failed["status"] == "failed" and failed["error"] == "ValueError: bad value"


def test_trials_parquet_has_a_column_per_hyperparameter(tmp_path):
    from mlbatch_jobs.train.search import SearchResult
    from mlbatch_jobs.train.tracking import write_trials

    trials = [
        {"family": "linear", "trial_id": "a", "status": "ok", "config": {"C": 0.5,
         "class_weight": "none"}, "roc_auc": 0.7, "curve_rounds": [1], "curve_train": [0.8],
         "curve_valid": [0.7], "cv_scores": None},
        {"family": "xgboost", "trial_id": "b", "status": "early_stopped",
         "config": {"max_depth": 3}, "roc_auc": 0.6, "curve_rounds": None, "curve_train": None,
         "curve_valid": None, "cv_scores": [0.6, 0.62]},
    ]  # fmt: skip
    result = SearchResult(tuning_metric("binary", None), trials, [], {}, 1.0)
    write_trials(tmp_path / "trials.parquet", result)
    table = pq.read_table(tmp_path / "trials.parquet")
    frame = table.to_pandas()
    assert frame["param_C"].tolist()[0] == 0.5 and np.isnan(frame["param_C"].tolist()[1])
    assert frame["param_max_depth"].tolist()[1] == 3.0
    assert table.column("param_class_weight").to_pylist() == ["none", None]
    assert list(frame["cv_scores"][1]) == [0.6, 0.62]
    assert json.loads(frame["config"][0]) == {"C": 0.5, "class_weight": "none"}
    assert json.loads(table.schema.metadata[b"mlbatch"]) == {"metric": "roc_auc", "mode": "max"}


def test_importance_finds_the_hyperparameter_that_matters():
    rng = np.random.default_rng(0)
    trials = [
        {"status": "ok", "config": {"depth": d, "noise": n}, "rmse": 2.0 * d + 0.01 * n}
        for d, n in zip(rng.integers(2, 10, 20), rng.random(20), strict=True)
    ]
    shares = importance.importances(importance.parameter_table(trials, "rmse"), "rmse")
    assert list(shares)[0] == "depth" and shares["depth"] > 0.8
    assert importance.importances(importance.parameter_table(trials[:3], "rmse"), "rmse") == {}


def test_long_curves_are_thinned_keeping_the_last_round():
    from mlbatch_jobs.train.models import Curve

    curve = Curve(list(range(1, 10_001)), [0.0] * 10_000, [1.0] * 10_000).thinned(500)
    assert len(curve.rounds) == 501 and curve.rounds[0] == 1 and curve.rounds[-1] == 10_000
    assert Curve([1, 2], [0.1, 0.2], [0.3, 0.4]).thinned(500).rounds == [1, 2]


def test_overfitting_is_flagged_when_the_gap_grows():
    rounds = list(range(1, 101))
    train = [0.7 + 0.003 * r for r in rounds]
    steady = {"curve_rounds": rounds, "curve_train": train, "best_iteration": 90,
              "curve_valid": [t - 0.01 for t in train]}  # fmt: skip
    assert overfitting(steady, "max")[0] is False
    valid = [0.7 + 0.001 * min(r, 30) for r in rounds]
    growing = {"curve_rounds": rounds, "curve_train": train, "curve_valid": valid,
               "best_iteration": 90}  # fmt: skip
    flagged, early, kept = overfitting(growing, "max")
    assert flagged and kept > early
