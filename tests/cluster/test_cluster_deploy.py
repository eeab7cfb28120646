"""`make deploy` on a real cluster: the chart installs into a namespace that enforces Pod
Security "restricted", every pod of the release is admitted and runs, `helm test` passes."""

from __future__ import annotations

import json

import pytest
from kube_cluster import RELEASE, Cluster

pytestmark = pytest.mark.slow


def test_the_namespace_enforces_restricted(cluster: Cluster, release: str):
    labels = cluster.get("namespace", release)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Enforced, not only labelled: the API server refuses a pod that is not hardened (no
    # securityContext: it may escalate, keeps capabilities, may run as root).
    privileged = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "not-hardened"},
        "spec": {"containers": [{"name": "c", "image": "localhost/mlbatch-pause:1"}]},
    }  # fmt: skip
    result = cluster.kubectl(
        "apply", "--namespace", release, "-f", "-", input=json.dumps(privileged), check=False
    )
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted' in result.stderr


def test_every_pod_of_the_release_is_admitted_and_ready(cluster: Cluster, release: str):
    # A pod that Pod Security refused never exists: its controller only records FailedCreate.
    events = cluster.items("events", "--namespace", release)
    refused = [
        e["message"] for e in events if e.get("reason") == "FailedCreate"
        and e["involvedObject"]["name"].startswith(RELEASE)  # the release's, not a run's
    ]  # fmt: skip
    assert refused == []
    pods = cluster.items(
        "pods", "--namespace", release, "--selector", f"app.kubernetes.io/instance={RELEASE}"
    )
    storage = [p for p in pods if "seaweedfs" in p["metadata"]["name"]]
    assert storage and all(c["ready"] for p in storage for c in p["status"]["containerStatuses"]), [
        p["status"] for p in storage
    ]


def test_helm_test_reaches_storage_and_conditional_puts_hold(cluster: Cluster, release: str):
    result = cluster.helm("test", RELEASE, "--namespace", release, "--logs", "--timeout", "5m")
    assert "Phase:          Succeeded" in result.stdout or "Succeeded" in result.stdout, (
        result.stdout
    )
