"""Data-parallel training on the chart's RayCluster (docs/train.md, Data-parallel
training): the release upgraded to two Ray worker pods and a head that takes trials too
(a trial's two workers plus a CPU for Ray Data's reads: three CPUs), the demo pipeline run
with `train.data_parallel: always`; each completed XGBoost trial ran two Ray Train workers
on both worker pods, whose shards of the train split, read from the release's S3, add up
to it."""

from __future__ import annotations

import pytest
from cluster_runs import check_succeeded, mlbatch, new_sample, run_json
from kube_cluster import RELEASE, REPO, Cluster, wait_until
from test_cluster_kuberay import _read_trials, _ready_ray_pods, ray_nodes, ray_values, train_version

pytestmark = pytest.mark.slow

WORKER_PODS = 2


@pytest.fixture(scope="module")
def parallel_ray_cluster(cluster: Cluster, release: str, tmp_path_factory):
    """The release with a RayCluster of two worker pods and a head with a CPU; its values
    exactly as before afterwards (with --reuse-values alone, runsTrials and the workers'
    count would stay, and the KubeRay test would find trials on its head)."""
    folder = tmp_path_factory.mktemp("ray")
    before = folder / "values-before.json"
    before.write_text(cluster.helm("get", "values", RELEASE, "--namespace", release,
                                   "--output", "json").stdout)  # fmt: skip
    cluster.helm(
        "upgrade", RELEASE, str(REPO / "charts/mlbatch"), "--namespace", release,
        "--reuse-values", "--values", ray_values(folder),
        "--set", f"ray.imageTag={train_version()}",
        "--set", f"ray.worker.replicas={WORKER_PODS}", "--set", "ray.head.runsTrials=true",
        # The node has 2 CPUs: two workers asking for what one asks for in the KubeRay test
        # leave room for the stage Jobs (Ray's CPUs come from the limits, 1 each).
        "--set", "ray.worker.resources.requests.cpu=250m",
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    try:
        yield wait_until(
            "the Ray head and both workers to be ready",
            lambda: _enough(_ready_ray_pods(cluster, release)),
            timeout=600, interval=5,
        )  # fmt: skip
    finally:
        cluster.helm(
            "upgrade", RELEASE, str(REPO / "charts/mlbatch"), "--namespace", release,
            "--reset-values", "--values", str(before), "--wait", "--timeout", "5m",
        )  # fmt: skip


def _enough(pods: dict | None) -> dict | None:
    return pods if pods and len(pods["worker"]) >= WORKER_PODS else None


def test_data_parallel_trials_run_on_both_worker_pods(
    cluster, release, parallel_ray_cluster, storage_env, demo_spec
):
    storage, env = storage_env
    assert mlbatch("demo-data", "--storage", storage, env=env).returncode == 0
    result = mlbatch(
        "run", str(demo_spec), "--executor", "kubernetes", "--namespace", release,
        "--context", "mlbatch", "--storage", storage, *new_sample(demo_spec, 37),
        "--set", "train.data_parallel=always", "--set", "train.models=[xgboost]",
        "--set", "train.time_budget_s=120", "--output", "json",
        env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    run_id = run_json(result)["run_id"]
    check_succeeded(cluster, storage, env, run_id)

    nodes, on_workers = ray_nodes(cluster, release, parallel_ray_cluster)

    trials = _read_trials(storage, env, run_id)
    done = trials[trials["status"] == "ok"]
    assert len(done), trials[["status", "error"]]
    for _, trial in done.iterrows():
        assert trial["workers"] == 2
        # SPREAD puts the two workers on two nodes; the head takes trials too, so one of
        # them may be the head, but never both.
        assert len(set(trial["worker_nodes"])) == 2, trial["worker_nodes"]
        assert set(trial["worker_nodes"]) & on_workers, (trial["worker_nodes"], nodes)
        assert all(rows > 0 for rows in trial["worker_rows"]), trial["worker_rows"]
    log = mlbatch("logs", run_id, "train", "--storage", storage, env=env).stdout
    assert "[train] data-parallel: XGBoost and LightGBM trials train on 2 workers" in log
