"""Tune's state on a real S3 server, with Ray started as the train stage starts it: once
the storage credentials are in the environment. Trial workers rebuild the S3 filesystem
from their own environment, since it pickles without the keys (mlbatch.arrow_s3), and
no object Tune stores holds a credential."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_train_search import search_data  # noqa: E402

from mlbatch import storage  # noqa: E402
from mlbatch.runs import RunLayout, new_run_id  # noqa: E402
from mlbatch.spec import TrainSpec  # noqa: E402
from mlbatch_jobs.train.metrics import tuning_metric  # noqa: E402
from mlbatch_jobs.train.ray_runtime import local_ray  # noqa: E402
from mlbatch_jobs.train.search import search  # noqa: E402
from mlbatch_jobs.train.stage import best_models  # noqa: E402
from mlbatch_jobs.train.tune_storage import tune_storage  # noqa: E402

pytestmark = pytest.mark.slow


def test_tune_state_is_stored_on_s3_without_credentials(tmp_path, s3_env):
    data = search_data(tmp_path, "multiclass")
    layout = RunLayout(s3_env, new_run_id())
    tune_at = tune_storage(layout, "1-abcd")
    assert tune_at.uri == f"{layout.uri}/train/scratch/1-abcd" and tune_at.filesystem is not None
    spec = TrainSpec(models=["xgboost"], num_samples=2, time_budget_s=40)
    with local_ray(tmp_path / "work", num_cpus=2):
        result = search(data, spec, tuning_metric("multiclass", None), storage=tune_at)
        model = best_models(result, tmp_path / "best")["xgboost"]  # fetched back from S3

    stored = [uri[len(tune_at.uri) + 1 :] for uri in storage.list_uris(tune_at.uri)]
    assert any(p.startswith("xgboost/experiment_state") for p in stored), stored
    assert any(p.endswith("tuner.pkl") for p in stored), stored
    assert any(p.endswith("/checkpoint_000000/model.json") for p in stored), stored
    params = next(p for p in stored if p.endswith("/params.json"))
    assert "learning_rate" in json.loads(storage.read_bytes(f"{tune_at.uri}/{params}"))
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        secret = os.environ[name].encode()
        assert not [p for p in stored if secret in storage.read_bytes(f"{tune_at.uri}/{p}")]
    predictions = model.predict(__import__("xgboost").DMatrix(
        data.main.x_valid, feature_names=model.feature_names))  # fmt: skip
    assert predictions.shape == (len(data.main.y_valid), 3)
    assert np.allclose(predictions.sum(axis=1), 1.0)
