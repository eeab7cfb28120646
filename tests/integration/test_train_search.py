"""The Ray Tune search on a real local Ray (one for the module): every family ranked, ASHA
stopping weak trials, the time budget honoured. Tune's state on S3: test_train_s3.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from features_fixture import write_features_outputs  # noqa: E402

from mlbatch.errors import BadInput  # noqa: E402
from mlbatch.spec import TrainSpec  # noqa: E402
from mlbatch_jobs.train.data import SearchData, training_data  # noqa: E402
from mlbatch_jobs.train.metrics import tuning_metric  # noqa: E402
from mlbatch_jobs.train.ray_runtime import local_ray  # noqa: E402
from mlbatch_jobs.train.search import search  # noqa: E402
from mlbatch_jobs.train.stage import best_models  # noqa: E402
from mlbatch_jobs.train.tune_storage import TuneStorage  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_for_module(tmp_path_factory):
    with local_ray(tmp_path_factory.mktemp("ray"), num_cpus=2):
        yield


def search_data(tmp_path, task: str, rows: int = 600) -> SearchData:
    schema = write_features_outputs(tmp_path / task, task, rows=rows)
    splits = {n: pd.read_parquet(tmp_path / task / "splits" / f"{n}.parquet")
              for n in ("train", "valid")}  # fmt: skip
    return SearchData(training_data(schema, splits["train"], splits["valid"]))


def local_storage(tmp_path) -> TuneStorage:
    return TuneStorage(uri=f"file://{tmp_path}/tune", path=str(tmp_path / "tune"))


def test_every_family_is_searched_and_ranked(tmp_path):
    data = search_data(tmp_path, "binary")
    # XGBoost is searched in the other tests here; every family trains in test_train.py.
    spec = TrainSpec(models=["linear", "random_forest", "lightgbm"], num_samples=2,
                     time_budget_s=60)  # fmt: skip
    result = search(data, spec, tuning_metric("binary", None), storage=local_storage(tmp_path))

    assert {t["family"] for t in result.trials} == set(spec.models)
    ranked = [row["roc_auc"] for row in result.leaderboard]
    assert ranked == sorted(ranked, reverse=True) and ranked[0] > 0.85
    assert set(result.checkpoints) == {row["family"] for row in result.leaderboard}
    models = best_models(result, tmp_path / "best")
    assert set(models) == set(result.checkpoints)
    done = [t for t in result.trials if t["status"] == "ok"]
    assert all(t["node"] and t["cpus"] == 1 and t["device"] == "cpu" for t in done)
    boosted = [t for t in done if t["family"] == "lightgbm"]
    for trial in boosted:  # scored every report_every rounds, and at the last one
        rounds, every = trial["curve_rounds"], spec.report_every
        assert rounds[-1] == trial["rounds"] and len(trial["curve_valid"]) == len(rounds)
        assert rounds[:-1] == list(range(every, trial["rounds"], every))[: len(rounds) - 1]


def test_asha_stops_weak_trials_early(tmp_path):
    data = search_data(tmp_path, "regression")
    # Half the trials learn 150 times slower: far behind at every rung, so ASHA stops them.
    spec = TrainSpec(
        models=["xgboost"], num_samples=8, time_budget_s=90, search="random",
        report_every=5, max_rounds=300, early_stopping_rounds=300,
        search_spaces={"xgboost": {"learning_rate": {"type": "choice", "values": [0.3, 0.002]},
                                   "max_depth": 3}},
    )  # fmt: skip
    result = search(data, spec, tuning_metric("regression", None), storage=local_storage(tmp_path))

    stopped = [t for t in result.trials if t["status"] == "early_stopped"]
    completed = [t for t in result.trials if t["status"] == "ok"]
    assert stopped, [(t["status"], t["rounds"], t["config"]) for t in result.trials]
    assert all(t["rounds"] < spec.max_rounds for t in stopped)
    assert any(t["config"]["learning_rate"] == 0.002 for t in stopped)
    assert all(t["rounds"] == spec.max_rounds for t in completed)
    assert result.leaderboard[0]["config"]["learning_rate"] == 0.3
    assert result.leaderboard[0]["early_stopped"] == len(stopped)


def test_a_family_whose_every_hyperparameter_is_fixed_trains_its_one_configuration_once(tmp_path):
    data = search_data(tmp_path, "binary")
    fixed = {"C": 0.5, "class_weight": "balanced"}  # linear's whole space: nothing to sample
    spec = TrainSpec(models=["linear"], num_samples=5, time_budget_s=30,
                     search_spaces={"linear": fixed})  # fmt: skip
    result = search(data, spec, tuning_metric("binary", None), storage=local_storage(tmp_path))

    assert [(t["status"], t["config"]) for t in result.trials] == [("ok", fixed)]
    assert result.leaderboard[0]["family"] == "linear"


def test_the_time_budget_is_honoured_within_seconds(tmp_path):
    data = search_data(tmp_path, "binary", rows=3000)
    # Trials that would run for minutes: the deadline ends them, and they still report.
    spec = TrainSpec(
        models=["xgboost", "lightgbm"], num_samples=20, time_budget_s=20, scheduler="fifo",
        max_rounds=200_000, early_stopping_rounds=200_000,
        search_spaces={"xgboost": {"learning_rate": 0.0005},
                       "lightgbm": {"learning_rate": 0.0005}},
    )  # fmt: skip
    started = time.time()
    result = search(data, spec, tuning_metric("binary", None), storage=local_storage(tmp_path))
    wall = time.time() - started

    # The workers' start-up is reported apart and not charged to the budget.
    assert set(result.startup_s) == {"xgboost", "lightgbm"}
    assert wall < spec.time_budget_s + sum(result.startup_s.values()) + 8, wall
    assert {row["family"] for row in result.leaderboard} == {"xgboost", "lightgbm"}
    assert len(result.trials) < 2 * spec.num_samples  # the budget ended the launching too


def test_without_num_samples_the_portfolio_runs_first_and_the_budget_ends_it(tmp_path):
    from mlbatch_jobs.train.portfolio import portfolio
    from mlbatch_jobs.train.spaces import search_space

    data = search_data(tmp_path, "regression")
    spec = TrainSpec(models=["lightgbm"], time_budget_s=25, max_rounds=100)  # no num_samples
    started = time.time()
    result = search(data, spec, tuning_metric("regression", None), storage=local_storage(tmp_path))
    wall = time.time() - started

    points = portfolio("lightgbm", search_space("lightgbm", "regression"))
    tried = [t["config"] for t in result.trials]
    for point in points:  # every default configuration, among the first trials launched
        assert any(config == pytest.approx(point) for config in tried[: len(points) + 2])
    assert len(result.trials) > len(points)  # the searcher took over until the budget ended
    searched = wall - result.startup_s["lightgbm"]
    assert spec.time_budget_s - 10 < searched < spec.time_budget_s + 8, (wall, result.startup_s)
    assert result.candidates and set(result.candidates) <= {t["trial_id"] for t in result.trials}


def test_a_family_share_counts_from_its_first_trial_not_its_workers_start(tmp_path):
    # Shares of 5 s each: on a busy machine a family's workers take that long to start, and
    # a clock started with the Tuner left its boosters one round (docs/train.md). Counted
    # from the first trial's start, every family's first trial gets its share.
    data = search_data(tmp_path, "regression", rows=2000)
    spec = TrainSpec(models=["linear", "xgboost", "lightgbm"], time_budget_s=12, max_rounds=150,
                     early_stopping_rounds=150, scheduler="fifo")  # fmt: skip
    result = search(data, spec, tuning_metric("regression", None), storage=local_storage(tmp_path))

    boosted = [t for t in result.trials if t["family"] != "linear" and t["status"] == "ok"]
    assert {t["family"] for t in boosted} == {"xgboost", "lightgbm"}
    for family in ("xgboost", "lightgbm"):
        own = [t for t in boosted if t["family"] == family]
        # The first trial had its share (5 s) less the 2 s margin, however late it started
        # (seconds to minutes, as busy as the machine is); it trained past a round or two.
        assert max(t["allowed_s"] for t in own) > 2.5, own
        assert max(t["rounds"] for t in own) > 2, own
    assert set(result.startup_s) == set(spec.models)
    assert all(seconds >= 0 for seconds in result.startup_s.values())


def test_a_required_gpu_fails_before_any_trial(tmp_path):
    data = search_data(tmp_path, "binary")
    spec = TrainSpec(models=["xgboost"], resources={"gpu": "required"})
    storage_ = local_storage(tmp_path)
    with pytest.raises(BadInput, match="gpu is required, but the Ray cluster has no GPU"):
        search(data, spec, tuning_metric("binary", None), storage=storage_)
    assert not Path(storage_.path).exists()  # no Tune run was even created
