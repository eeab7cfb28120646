"""Data-parallel training (docs/train.md, Data-parallel training): the train stage as a Ray
Client of a real two-node cluster, its run on a real S3 server, `data_parallel: always`.
Each XGBoost trial runs two Ray Train workers, one per node, each reading its shard of
the features stage's train split from S3 as Ray Data; Tune still samples, ASHA still
stops by the reported rounds and the budget still ends the search; the saved model is a
native booster that scores as well as a single-process fit on the same rows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xgboost
from ray_cluster import RayCluster
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from features_fixture import commit_outputs, write_features_outputs  # noqa: E402

from mlbatch import storage  # noqa: E402
from mlbatch.manifest import OutputFile, load_manifest  # noqa: E402
from mlbatch.runs import RunLayout, new_run_id, write_spec  # noqa: E402

pytestmark = pytest.mark.slow
pytest.importorskip("grpc", reason="Ray Client needs ray[client] (grpcio): see docs/train.md")

ROWS = 3000
BUDGET_S = 60


def s3_features_run(root: str, train: dict) -> RunLayout:
    """A run on S3 whose features stage committed realistic outputs (binary task)."""
    layout = RunLayout(root, new_run_id())
    sources = {"table": {"uri": "table.csv"}}
    write_spec(layout, {"name": "dp", "target": "y", "etl": {"sources": sources}, "train": train})
    outputs = {}
    with tempfile.TemporaryDirectory() as folder:
        write_features_outputs(Path(folder), "binary", rows=ROWS)
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                relative = path.relative_to(folder).as_posix()
                uri = storage.join(layout.attempt_uri("features", "1-aaaa"), relative)
                storage.upload_file(path, uri)
                outputs[relative] = OutputFile(size=path.stat().st_size,
                                               sha256=storage.sha256_file(path))  # fmt: skip
    commit_outputs(layout, "features", "1-aaaa", outputs)
    return layout


def read_split(layout: RunLayout, name: str) -> pd.DataFrame:
    uri = storage.join(layout.attempt_uri("features", "1-aaaa"), f"splits/{name}.parquet")
    with tempfile.TemporaryDirectory() as folder:
        storage.download_file(uri, Path(folder) / "split.parquet")
        return pd.read_parquet(Path(folder) / "split.parquet")


def test_data_parallel_trials_on_two_nodes_read_shards_from_s3(tmp_path, s3_env):
    train = {
        "models": ["xgboost"], "data_parallel": "always", "data_parallel_workers": 2,
        "num_samples": 2, "time_budget_s": BUDGET_S, "max_rounds": 100, "report_every": 20,
        "early_stopping_rounds": 100, "search": "random", "ensemble": False,
    }  # fmt: skip
    layout = s3_features_run(s3_env, train)
    # Two nodes of two CPUs: a trial's two workers (one per node, SPREAD) and Ray Data's
    # reads; the nodes inherit the S3 credentials from this environment.
    with RayCluster.start(nodes=2, cpus_per_node=2) as cluster:
        environment = {**os.environ, "RAY_ADDRESS": cluster.client_address}
        log_path = tmp_path / "train.log"  # the whole story, kept even on a timeout
        with log_path.open("w") as log:
            done = subprocess.run(
                [sys.executable, "-m", "mlbatch_jobs.train", "--run", layout.uri, "--attempt",
                 "1-abcd"], env=environment, stdout=log, stderr=subprocess.STDOUT, timeout=600,
            )  # fmt: skip
    output = log_path.read_text()
    assert done.returncode == 0, output[-4000:]
    assert "[train] data-parallel: XGBoost and LightGBM trials train on 2 workers" in output
    assert "1 at a time with 2 data-parallel workers of 1 CPU" in output, output
    assert "the model is kept as trained on train alone" in output

    manifest, _ = load_manifest(layout, "train")
    assert manifest.metrics["data_parallel"] is True
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder)
        for name in ("trials.parquet", "model/model.json", "model/model_info.json"):
            storage.download_file(storage.join(layout.attempt_uri("train", "1-abcd"), name),
                                  local / name.replace("/", "_"))  # fmt: skip
        trials = pq.read_table(local / "trials.parquet").to_pandas()
        booster = xgboost.Booster(model_file=str(local / "model_model.json"))
        info = json.loads((local / "model_model_info.json").read_text())

    # Every completed trial ran two workers on the cluster's two nodes, and the workers'
    # shards add up to the train split (each read its own part, none the whole table).
    done_trials = trials[trials["status"] == "ok"]
    assert len(done_trials) >= 1, trials[["status", "error"]]
    train_rows = len(read_split(layout, "train"))
    for _, trial in done_trials.iterrows():
        assert trial["workers"] == 2
        assert len(set(trial["worker_nodes"])) == 2, trial["worker_nodes"]
        rows = list(trial["worker_rows"])
        assert sum(rows) == train_rows and max(rows) < train_rows, rows
    # ASHA saw the per-round reports: stopped trials stopped at a rung, not at the end.
    assert set(trials["status"]) <= {"ok", "early_stopped", "stopped"}, trials["status"]
    assert (trials["rounds"].dropna() <= 100).all()
    # The family's share counted from its first trial's start: used within it, plus what a
    # trial started before the end takes to start (charged: its clock runs), stop at a
    # report and save; a trial boosting on past the share would blow far beyond.
    used = re.search(r"\[train\] xgboost: .*; (\d+)s of the (\d+)s budget used", output)
    assert used and int(used[1]) <= int(used[2]) + 150, used and used[0]

    # The saved model is a native booster, as good as a single-process fit on the same rows.
    train_split, test_split = read_split(layout, "train"), read_split(layout, "test")
    features = info["features"]
    x_test = xgboost.DMatrix(test_split[features].to_numpy("float64"),
                             feature_names=booster.feature_names)  # fmt: skip
    parallel_auc = roc_auc_score(test_split["__target"], booster.predict(x_test))
    single = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 1},
        xgboost.DMatrix(train_split[features].to_numpy("float64"), train_split["__target"],
                        feature_names=booster.feature_names),
        num_boost_round=100,
    )  # fmt: skip
    single_auc = roc_auc_score(test_split["__target"], single.predict(x_test))
    assert parallel_auc > 0.85 and parallel_auc > single_auc - 0.03, (parallel_auc, single_auc)
    assert np.isfinite(info["tuning_metric"]["valid"])
