"""The GPU choice, on a Ray that was told it has a GPU (this machine has none): XGBoost
trials ask for it and run with device="cuda", LightGBM's probe finds no GPU learner, the
baselines stay on CPUs. The real GPU path needs a GPU machine (docs/train.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from features_fixture import write_features_outputs  # noqa: E402

from mlbatch.spec import TrainSpec  # noqa: E402
from mlbatch_jobs.train.data import SearchData, training_data  # noqa: E402
from mlbatch_jobs.train.families import load_family  # noqa: E402
from mlbatch_jobs.train.metrics import tuning_metric  # noqa: E402
from mlbatch_jobs.train.ray_runtime import local_ray  # noqa: E402
from mlbatch_jobs.train.resources import cluster_resources, gpu_device, plan_trials  # noqa: E402
from mlbatch_jobs.train.search import search  # noqa: E402
from mlbatch_jobs.train.tune_storage import TuneStorage  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_with_a_fake_gpu(tmp_path_factory):
    with local_ray(tmp_path_factory.mktemp("ray"), num_cpus=2, num_gpus=1):
        yield


def test_the_plan_gives_the_gpu_to_families_that_can_use_it():
    cluster = cluster_resources()
    assert cluster == {"CPU": 2.0, "GPU": 1.0}
    assert gpu_device("xgboost", cluster) == "cuda"
    assert gpu_device("lightgbm", cluster) is None  # probed on the (fake) GPU: no learner
    assert gpu_device("linear", cluster) is None
    plan = plan_trials(load_family("xgboost"), TrainSpec(), cluster, gpu_device="cuda")
    assert (plan.cpus, plan.gpus, plan.device, plan.concurrency) == (2, 1.0, "cuda", 1)


def test_trials_run_where_the_plan_says(tmp_path):
    schema = write_features_outputs(tmp_path / "f", "binary")
    splits = {n: pd.read_parquet(tmp_path / "f" / "splits" / f"{n}.parquet")
              for n in ("train", "valid")}  # fmt: skip
    data = SearchData(training_data(schema, splits["train"], splits["valid"]))
    spec = TrainSpec(models=["xgboost"], num_samples=1, time_budget_s=30)
    storage = TuneStorage(uri="", path=str(tmp_path / "tune"))
    result = search(data, spec, tuning_metric("binary", None), storage=storage)

    (trial,) = result.trials
    placed = (trial["status"], trial["device"], trial["gpus"], trial["cpus"])
    assert placed == ("ok", "cuda", 1.0, 2)
