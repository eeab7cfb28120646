"""The train stage as a Ray Client of a real two-node cluster on loopback (DESIGN §5):
versions checked on connect, trials spread over both nodes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray_cluster import RayCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from features_fixture import committed_features  # noqa: E402

from mlbatch import storage  # noqa: E402
from mlbatch.manifest import load_manifest  # noqa: E402

pytestmark = pytest.mark.slow
pytest.importorskip("grpc", reason="Ray Client needs ray[client] (grpcio): see docs/train.md")


@pytest.fixture(scope="module")
def cluster():
    with RayCluster.start(nodes=2, cpus_per_node=1) as running:
        yield running


def test_trials_run_on_both_nodes_of_a_cluster(tmp_path, cluster):
    # Trials that boost until the deadline: the first two run side by side, one per node,
    # however long the second node's worker takes to start.
    train = {
        "models": ["xgboost"], "num_samples": 2, "time_budget_s": 30, "scheduler": "fifo",
        "max_rounds": 500_000, "early_stopping_rounds": 500_000,
        "search_spaces": {"xgboost": {"learning_rate": 0.0005}},
    }  # fmt: skip
    layout = committed_features(tmp_path / "store", "binary", train=train)
    environment = {**os.environ, "RAY_ADDRESS": cluster.client_address}
    done = subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.train", "--run", layout.uri, "--attempt", "1-abcd"],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"[train] Ray: {cluster.client_address}" in done.stdout
    assert "2 at a time with 1 CPU" in done.stdout  # concurrency from the cluster's 2 CPUs

    manifest, _ = load_manifest(layout, "train")
    attempt = storage.local_path(layout.attempt_uri("train", "1-abcd"))
    trials = pq.read_table(attempt / "trials.parquet").to_pandas()
    nodes = set(trials.loc[trials["status"] == "ok", "node"])
    assert len(nodes) == 2, trials[["status", "node"]]
    assert manifest.metrics["completed_trials"] == 2
