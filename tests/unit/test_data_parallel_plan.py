"""Data-parallel training without a Ray cluster: the spec's setting, the auto rule, the
resources a trial asks for, and the stop every worker must agree on."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from features_fixture import write_features_outputs
from pydantic import ValidationError

from mlbatch.errors import BadInput
from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import data_parallel
from mlbatch_jobs.train.data import training_data
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import tuning_metric
from mlbatch_jobs.train.models import FitOptions, stop_due

MiB = 2**20


def test_the_spec_takes_data_parallel_and_rejects_what_cannot_work():
    assert TrainSpec().data_parallel == "auto" and TrainSpec().data_parallel_workers == 2
    assert TrainSpec.model_validate({"data_parallel": "always"}).data_parallel == "always"
    with pytest.raises(ValidationError, match="data_parallel"):
        TrainSpec.model_validate({"data_parallel": "sometimes"})
    with pytest.raises(ValidationError, match="data_parallel_workers"):
        TrainSpec.model_validate({"data_parallel_workers": 1})
    with pytest.raises(ValidationError, match="train on CPUs"):
        TrainSpec.model_validate({"data_parallel": "always", "resources": {"gpu": "required"}})


def test_auto_goes_data_parallel_over_a_quarter_of_one_workers_memory():
    spec = TrainSpec()
    small, _ = data_parallel.decide(spec, table_bytes=200 * MiB, worker_memory=1024 * MiB)
    large, why = data_parallel.decide(spec, table_bytes=300 * MiB, worker_memory=1024 * MiB)
    assert (small, large) == (False, True)
    assert "300.0 MiB" in why and "1024 MiB" in why
    never = TrainSpec(data_parallel="never")
    assert data_parallel.decide(never, table_bytes=10**12, worker_memory=MiB)[0] is False
    always = TrainSpec(data_parallel="always")
    assert data_parallel.decide(always, table_bytes=1, worker_memory=10**12)[0] is True
    # Only the boosters train data-parallel: a baseline-only search never does.
    linear = TrainSpec(models=["linear"], data_parallel="always")
    assert data_parallel.decide(linear, table_bytes=1, worker_memory=1)[0] is False
    # auto on a cluster too small for a data-parallel trial: one worker, said why; never a failure
    small_cluster, why = data_parallel.decide(
        spec, table_bytes=300 * MiB, worker_memory=1024 * MiB, cluster_cpus=2
    )
    assert small_cluster is False and "needs 3 CPUs" in why and "has 2" in why
    assert data_parallel.decide(spec, table_bytes=300 * MiB, worker_memory=1024 * MiB,
                                cluster_cpus=3)[0] is True  # fmt: skip


def test_a_plan_keeps_a_cpu_for_ray_data_and_fails_clearly_on_a_small_cluster():
    spec = TrainSpec(data_parallel="always", data_parallel_workers=2)
    assert data_parallel.plan(spec, {"CPU": 3.0, "GPU": 0.0}).concurrency == 1
    assert data_parallel.plan(spec, {"CPU": 9.0, "GPU": 0.0}).concurrency == 4
    capped = TrainSpec(data_parallel="always", max_concurrent_trials=2)
    assert data_parallel.plan(capped, {"CPU": 9.0, "GPU": 0.0}).concurrency == 2
    wide = TrainSpec(data_parallel="always", resources={"cpus_per_trial": 2})
    assert data_parallel.plan(wide, {"CPU": 9.0, "GPU": 0.0}).cpus_per_trial == 4
    with pytest.raises(BadInput, match="needs 3 CPUs .* has 2"):
        data_parallel.plan(spec, {"CPU": 2.0, "GPU": 0.0})


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_the_agreed_stop_replaces_the_deadline(tmp_path, family):
    # A worker's stop comes from stop_after alone (rank 0's broadcast answer in a trial):
    # a deadline long past stops nothing, and a stop at round 20 ends every fit there.
    write_features_outputs(tmp_path, "binary", rows=400)
    schema = json.loads((tmp_path / "feature_schema.json").read_text())
    data = training_data(schema, pd.read_parquet(tmp_path / "splits/train.parquet"),
                         pd.read_parquet(tmp_path / "splits/valid.parquet"))  # fmt: skip
    options = FitOptions(
        metric=tuning_metric("binary", None), deadline=time.time() - 100, max_rounds=200,
        early_stopping_rounds=500, report_every=10, stop_after=lambda rounds: rounds >= 20,
    )  # fmt: skip
    assert stop_due(19, options) is False and stop_due(20, options) is True
    fit = load_family(family).fit({"learning_rate": 0.1}, data, options)
    assert fit.rounds == 20
    assert np.all(np.isfinite(fit.curve.valid))
