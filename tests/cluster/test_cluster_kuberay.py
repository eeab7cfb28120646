"""KubeRay on a real cluster: the operator (built from its Go module, run by cluster/up.sh)
brings up the chart's RayCluster from the train image; the train stage connects through Ray
Client and its trials run on the Ray worker pods, not on the head."""

from __future__ import annotations

import io
import json
import subprocess

import boto3
import pyarrow.parquet as pq
import pytest
import yaml
from cluster_runs import check_succeeded, mlbatch, new_sample, run_json
from kube_cluster import RELEASE, REPO, Cluster, wait_until

pytestmark = pytest.mark.slow

NODES = """
import json, ray
ray.init(address="auto", logging_level="ERROR")
alive = [n for n in ray.nodes() if n["Alive"]]
print(json.dumps([{"id": n["NodeID"], "ip": n["NodeManagerAddress"]} for n in alive]))
"""


def train_version() -> str:
    return subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "mlbatch.codeversion", "train"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def ray_values(folder) -> str:
    """cluster-ray-values.yaml without the placeholders it carries to render on its own
    (the chart tests): the release keeps its own image tag and pipeline spec."""
    values = yaml.safe_load((REPO / "charts/mlbatch/ci/cluster-ray-values.yaml").read_text())
    path = folder / "ray-values.yaml"
    path.write_text(yaml.safe_dump({"ray": values["ray"]}))
    return str(path)


@pytest.fixture(scope="module")
def ray_cluster(cluster: Cluster, release: str, tmp_path_factory):
    """The release upgraded with a RayCluster; removed again afterwards (it holds a CPU)."""
    cluster.helm(
        "upgrade", RELEASE, str(REPO / "charts/mlbatch"), "--namespace", release,
        "--reuse-values", "--values", ray_values(tmp_path_factory.mktemp("ray")),
        "--set", f"ray.imageTag={train_version()}", "--wait", "--timeout", "10m",
    )  # fmt: skip
    try:
        pods = wait_until(
            "the Ray head and worker to be ready",
            lambda: _ready_ray_pods(cluster, release),
            timeout=600,
            interval=5,
        )
        yield pods
    finally:
        cluster.helm(
            "upgrade",
            RELEASE,
            str(REPO / "charts/mlbatch"),
            "--namespace",
            release,
            "--reuse-values",
            "--set",
            "ray.enabled=false",
            "--wait",
            "--timeout",
            "5m",
        )


def _ready_ray_pods(cluster: Cluster, namespace: str) -> dict[str, list[dict]] | None:
    pods = cluster.items("pods", "--namespace", namespace, "--selector", "ray.io/is-ray-node=yes")
    by_type: dict[str, list[dict]] = {"head": [], "worker": []}
    for pod in pods:
        statuses = pod["status"].get("containerStatuses") or []
        if statuses and all(s["ready"] for s in statuses):
            by_type[pod["metadata"]["labels"]["ray.io/node-type"]].append(pod)
    return by_type if by_type["head"] and by_type["worker"] else None


def test_host_cli_run_trains_on_the_ray_worker_pods(
    cluster, release, ray_cluster, storage_env, demo_spec
):
    """The controller on the host (`--executor kubernetes`): every stage a Job in the
    cluster, the train stage a Ray Client of the RayCluster, its trials on the workers."""
    storage, env = storage_env
    assert mlbatch("demo-data", "--storage", storage, env=env).returncode == 0
    result = mlbatch(
        "run", str(demo_spec), "--executor", "kubernetes", "--namespace", release,
        "--context", "mlbatch", "--storage", storage, *new_sample(demo_spec, 31),
        "--output", "json",
        env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    run_id = run_json(result)["run_id"]
    check_succeeded(cluster, storage, env, run_id)

    nodes, worker_nodes = ray_nodes(cluster, release, ray_cluster)
    worker_ips = {p["status"]["podIP"] for p in ray_cluster["worker"]}
    assert worker_nodes, (nodes, worker_ips)

    trials = _read_trials(storage, env, run_id)
    placed = set(trials.loc[trials["status"] == "ok", "node"])
    assert placed and placed <= worker_nodes, (placed, nodes)
    log = mlbatch("logs", run_id, "train", "--storage", storage, env=env).stdout
    assert "Ray: ray://" in log, log[-2000:]


def ray_nodes(cluster: Cluster, namespace: str, pods: dict[str, list[dict]]):
    """(every Ray node as {id, ip}, the ids of the nodes on the worker pods), asked of the
    head pod (pods: _ready_ray_pods' answer)."""
    head = pods["head"][0]["metadata"]["name"]
    nodes = json.loads(
        cluster.kubectl("exec", head, "--namespace", namespace, "--", "python", "-c", NODES)
        .stdout.strip()
        .splitlines()[-1]
    )
    worker_ips = {p["status"]["podIP"] for p in pods["worker"]}
    return nodes, {n["id"] for n in nodes if n["ip"] in worker_ips}


def _read_trials(storage: str, env: dict, run_id: str):
    bucket = storage.removeprefix("s3://")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/train/_manifest.json")["Body"].read()
    )
    key = f"runs/{run_id}/train/attempts/{manifest['attempt']}/trials.parquet"
    return pq.read_table(
        io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ).to_pandas()
