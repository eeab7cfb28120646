"""Fixtures of the real-cluster tier (DESIGN §6, tier 4): the one-node cluster that
`make cluster-up` started, the chart deployed on it with `make deploy`, and the host's
view of the in-cluster storage through a port-forward.

Under CI=true a cluster that is not up fails these tests; elsewhere they skip. CI starts
the cluster while the other tests run: MLBATCH_CLUSTER_UP_STATUS names the file its
`make cluster-up` writes its exit status to, and these tests wait for it."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from kube_cluster import BUCKET, NAMESPACE, RELEASE, REPO, Cluster, make

from mlbatch.spec.loader import parse_yaml

# CI's cluster-up builds the programs cold (about 20 min on 2 cores) and loads the images.
CLUSTER_UP_WAIT_S = 45 * 60


def wait_for_cluster_up(status_file: Path, timeout_s: float = CLUSTER_UP_WAIT_S) -> None:
    """Wait until the background cluster-up has written its exit status; fail unless 0."""
    deadline = time.monotonic() + timeout_s
    while not status_file.is_file() or not status_file.read_text().strip():
        if time.monotonic() > deadline:
            pytest.fail(f"the cluster did not come up within {timeout_s / 60:.0f} min "
                        f"(no exit status in {status_file})")  # fmt: skip
        time.sleep(5)
    code = status_file.read_text().strip()
    if code != "0":
        pytest.fail(f"make cluster-up exited {code}: see its log beside {status_file}")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    if os.environ.get("MLBATCH_CLUSTER_UP_STATUS"):
        wait_for_cluster_up(Path(os.environ["MLBATCH_CLUSTER_UP_STATUS"]))
    found = Cluster.running()
    if found is None:
        message = "no one-node cluster is up: run `sudo make cluster-up` first"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
        pytest.skip(message)
    return found


def sampled_demo_spec(path: Path) -> Path:
    """The flights demo cut to fit a 2-core CI machine: 30k sampled rows, a short search."""
    spec = parse_yaml((REPO / "examples/flights.yaml").read_text())
    spec["etl"]["sample_rows"] = 30000
    # A new sample each session: on a cluster whose storage outlived an earlier session,
    # every stage still runs as a Job instead of coming from the cache.
    spec["etl"]["seed"] = int(time.time()) % 1_000_000
    for rule in spec["etl"]["validation"]:
        if rule["rule"] == "row_count":
            rule["min"] = 1000
    spec["explore"]["sample_rows"] = 10000
    spec["train"].update(models=["linear", "xgboost"], num_samples=2, time_budget_s=40)
    spec["evaluate"].update(gates=["roc_auc >= 0.6"], bootstrap=50)
    # One CPU per stage: the node has two, and SeaweedFS and the controller ask for some.
    spec["execution"] = {"stages": {"train": {"cpu": "1", "memory": "3Gi"}}}
    # JSON is YAML, and leaves no key (`on:`) for a YAML 1.1 reader to take for a boolean.
    path.write_text(json.dumps(spec, indent=2))
    return path


@pytest.fixture(scope="session")
def demo_spec(tmp_path_factory) -> Path:
    return sampled_demo_spec(tmp_path_factory.mktemp("spec") / "flights-ci.yaml")


@pytest.fixture(scope="session")
def release(cluster: Cluster, demo_spec: Path) -> str:
    """The chart installed by `make deploy` with the sampled demo spec; its namespace."""
    make("deploy", SPEC=str(demo_spec), K8S_NAMESPACE=NAMESPACE, HELM_RELEASE=RELEASE)
    return NAMESPACE


@pytest.fixture(scope="session")
def storage_env(cluster: Cluster, release: str):
    """The host's environment for the in-cluster SeaweedFS: a port-forward to its Service
    and the release's generated keys. Yields (storage URI, env)."""
    secret = cluster.get("secret", f"{RELEASE}-credentials", "--namespace", release)
    keys = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    with cluster.port_forward(release, f"service/{RELEASE}-s3", 8333) as port:
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        yield f"s3://{BUCKET}", env
