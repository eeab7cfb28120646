"""The train stage: data loading, the model families, the Ray Tune search, the stage itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from features_fixture import TASKS, committed_features, write_features_outputs
from ray.tune.search import Searcher

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest
from mlbatch.spec import TrainSpec
from mlbatch_jobs.train.data import TrainingData, training_data
from mlbatch_jobs.train.local_ray import local_ray
from mlbatch_jobs.train.models import FAMILIES, native_feature_names
from mlbatch_jobs.train.scoring import sort_best_first, tuning_score
from mlbatch_jobs.train.search import LaunchUntil, search, trial_record

CONFIGS = {
    "xgboost": {"learning_rate": 0.2, "max_depth": 3},
    "lightgbm": {"learning_rate": 0.2, "num_leaves": 8, "min_child_samples": 5},
}


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
    assert set(np.unique(data.y_train)) == {0, 1, 2}


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
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_saved_model_predicts_as_the_fit_did(tmp_path, family, task):
    data = prepared(tmp_path, task)
    model = FAMILIES[family]
    fit = model.fit(CONFIGS[family], data, threads=1, seed=0)
    assert 0 <= fit.best_iteration < fit.rounds
    expected = model.predict(fit, data.x_valid)

    path = model.save(fit, tmp_path)
    assert path.name == {"xgboost": "model.json", "lightgbm": "model.txt"}[family]
    if family == "xgboost":
        booster = xgboost.Booster(model_file=str(path))
        assert booster.num_boosted_rounds() == fit.best_iteration + 1
        loaded = booster.predict(xgboost.DMatrix(data.x_valid, feature_names=booster.feature_names))
    else:
        booster = lightgbm.Booster(model_file=str(path))
        assert booster.current_iteration() == fit.best_iteration + 1
        loaded = booster.predict(data.x_valid)
    np.testing.assert_allclose(loaded, expected, rtol=1e-6)
    expected_shape = (len(data.y_valid), 3) if task == "multiclass" else (len(data.y_valid),)
    assert loaded.shape == expected_shape


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_passed_deadline_stops_boosting_after_one_round(tmp_path, family):
    data = prepared(tmp_path, "binary")
    fit = FAMILIES[family].fit(CONFIGS[family], data, threads=1, seed=0, deadline=time.time() - 1)
    assert fit.rounds == 1 and fit.best_iteration == 0


def test_tuning_scores_on_known_inputs():
    y = np.array([0, 0, 1, 1])
    assert tuning_score("binary", y, np.array([0.1, 0.4, 0.35, 0.8]), 2) == pytest.approx(0.75)
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    expected = -np.log(0.8)
    assert tuning_score("multiclass", np.array([0, 1]), probabilities, 3) == pytest.approx(expected)
    rmse = tuning_score("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), 0)
    assert rmse == pytest.approx(np.sqrt(4 / 3))


def test_sort_best_first_respects_the_mode():
    rows = [{"m": 0.5}, {"m": 0.9}, {"m": 0.7}]
    assert [r["m"] for r in sort_best_first(rows, "m", "max")] == [0.9, 0.7, 0.5]
    assert [r["m"] for r in sort_best_first(rows, "m", "min")] == [0.5, 0.7, 0.9]


class FixedSearcher(Searcher):
    def suggest(self, trial_id):
        return {"learning_rate": 0.1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


def test_no_trial_starts_after_the_cutoff():
    running = LaunchUntil(FixedSearcher(), max_concurrent=2, cutoff=time.time() + 60)
    assert running.suggest("a") == {"learning_rate": 0.1}
    ended = LaunchUntil(FixedSearcher(), max_concurrent=2, cutoff=time.time() - 1)
    assert ended.suggest("b") == Searcher.FINISHED


def test_trial_records_tell_completed_failed_and_stopped_trials_apart():
    def record(metrics, error=None):
        result = SimpleNamespace(metrics=metrics, config={"max_depth": 3}, error=error)
        return trial_record("xgboost", result, "rmse")

    done = record({"rmse": 1.5, "best_iteration": 9, "rounds": 60, "time_total_s": 2.25})
    assert done == {"family": "xgboost", "config": {"max_depth": 3}, "status": "ok",
                    "rmse": 1.5, "best_iteration": 9, "rounds": 60, "seconds": 2.25}  # fmt: skip
    assert record({})["status"] == "stopped"
    failed = record({}, error=ValueError("bad value\ntraceback"))
    assert failed["status"] == "failed" and failed["error"] == "ValueError: bad value"


@pytest.fixture(scope="class")
def ray_cluster(tmp_path_factory):
    """One Ray for the search tests, stopped before the stage test starts its own."""
    with local_ray(tmp_path_factory.mktemp("ray"), num_cpus=2):
        yield


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
class TestSearch:
    @pytest.mark.parametrize(
        ("task", "metric", "mode", "good"),
        [("binary", "roc_auc", "max", 0.85), ("multiclass", "log_loss", "min", 0.8),
         ("regression", "rmse", "min", 15.0)],
    )  # fmt: skip
    def test_tries_every_family_and_ranks_them(self, tmp_path, task, metric, mode, good):
        data = prepared(tmp_path, task)
        spec = TrainSpec(num_samples=2, time_budget_s=40, max_concurrent_trials=2)
        result = search(data, spec, storage=tmp_path / "tune")

        assert (result.metric, result.mode) == (metric, mode)
        assert len(result.trials) == 4
        assert all(t["status"] == "ok" for t in result.trials), result.trials
        assert sorted(t["family"] for t in result.trials) == ["lightgbm"] * 2 + ["xgboost"] * 2
        assert {row["family"] for row in result.leaderboard} == {"lightgbm", "xgboost"}
        first, second = (row[metric] for row in result.leaderboard)
        assert first >= second if mode == "max" else first <= second
        assert first > good if mode == "max" else first < good
        assert result.best["trials"] == result.best["completed"] == 2
        assert result.best["rounds"] > result.best["best_iteration"] >= 0
        assert result.wall_s < 40


@pytest.mark.slow
def test_train_stage_commits_the_best_model(tmp_path):
    layout = committed_features(tmp_path / "store", "multiclass")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("MLBATCH_CODE_VERSION", None)
    done = subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.train", "--run", layout.uri, "--attempt", "1-abcd"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "train")
    assert manifest.attempt == "1-abcd" and manifest.status == "succeeded"
    family = manifest.metrics["best_family"]
    model_file = {"xgboost": "model/model.json", "lightgbm": "model/model.txt"}[family]
    assert set(manifest.outputs) == {
        model_file,
        "model/model_info.json",
        "trials.json",
        "leaderboard.json",
    }
    assert manifest.inputs[0].uri == layout.manifest_uri("features")
    assert manifest.metrics["trials"] == 4 and manifest.metrics["completed_trials"] == 4
    assert manifest.metrics["tuning_metric"] == "log_loss"
    assert 0 < manifest.metrics["valid_log_loss"] < 0.8
    assert manifest.metrics["search_s"] < 20

    attempt = storage.local_path(layout.attempt_uri("train", "1-abcd"))
    info = json.loads((attempt / "model" / "model_info.json").read_text())
    assert info["family"] == family and info["task"] == "multiclass"
    assert info["features"] == ["distance", "hour", "temp", "carrier"]
    assert info["classes"] == ["high", "low", "mid"]
    assert info["rounds"] == info["best_iteration"] + 1
    assert info["tuning_metric"]["valid"] == pytest.approx(manifest.metrics["valid_log_loss"])
    trials = json.loads((attempt / "trials.json").read_text())
    assert len(trials["trials"]) == 4 and trials["metric"] == "log_loss"
    leaderboard = json.loads((attempt / "leaderboard.json").read_text())
    assert leaderboard["families"][0]["family"] == family
    assert list(home.iterdir()) == []  # Ray kept to scratch space: nothing in the home folder
