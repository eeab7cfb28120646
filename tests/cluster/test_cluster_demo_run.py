"""The flights demo (sampled) on a real cluster, from the chart's suspended CronJob with
`make k8s-run`: every stage attempt a real Job and pod from the built images on the
in-cluster SeaweedFS; the run succeeds, the model is registered and promoted, and the host
reads it all through a port-forward. (The host CLI's run is test_cluster_kuberay's.)"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from datetime import datetime

import pytest
from cluster_runs import check_succeeded, find_run, mlbatch, run_json, stage_jobs, stage_of
from kube_cluster import RELEASE, REPO, STATE, Cluster, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_data(storage_env):
    storage, env = storage_env
    result = mlbatch("demo-data", "--storage", storage, env=env)
    assert result.returncode == 0, result.stderr
    return storage, env


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _running_train(cluster: Cluster, job: str, storage: str, env: dict) -> dict | None:
    """The run once its train Job exists; fails at once if the controller Job failed."""
    controller = cluster.get("job", job, "--namespace", RELEASE)
    if controller["status"].get("failed"):
        logs = cluster.kubectl("logs", f"job/{job}", "--namespace", RELEASE, check=False)
        raise AssertionError(f"the controller Job failed:\n{logs.stdout[-3000:]}")
    run = find_run(storage, env, job)
    return run if run and stage_jobs(cluster, run["run_id"], "train") else None


def pod_start_latencies(cluster: Cluster, namespace: str, run_id: str) -> dict[str, float]:
    """Seconds from each stage Job's creation to its container running, by Job name."""
    latencies = {}
    for job in cluster.items(
        "jobs", "--namespace", namespace, "--selector", f"mlbatch.io/run={run_id}"
    ):
        name = job["metadata"]["name"]
        pods = cluster.items("pods", "--namespace", namespace, "--selector", f"job-name={name}")
        for pod in pods[:1]:
            state = pod["status"]["containerStatuses"][0]["state"]
            started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
            if started:
                latencies[name] = (
                    _time(started) - _time(job["metadata"]["creationTimestamp"])
                ).total_seconds()
    return latencies


def test_demo_from_the_cronjob_survives_its_controller_pod_deleted(
    cluster: Cluster, release: str, demo_data
):
    """`make k8s-run`; mid-train the controller's pod is deleted (a node drain, say): the
    Job's next pod adopts the running train Job, nothing committed runs again."""
    storage, env = demo_data
    # A new name each time: a name is bound to its run for good (a rerun would resume it).
    job = f"mlbatch-ci-demo-{int(time.time())}"
    follow = subprocess.Popen(
        ["make", "--no-print-directory", "k8s-run", f"RUN_JOB={job}", f"K8S_NAMESPACE={release}",
         f"HELM_RELEASE={RELEASE}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        run = wait_until("the demo's train Job", lambda: (
            (r := find_run(storage, env, job)) and stage_jobs(cluster, r["run_id"], "train") and r
        ), timeout=900, interval=3)  # fmt: skip
        run_id = run["run_id"]
        done_before = {
            stage_of(j) for j in stage_jobs(cluster, run_id) if j["status"].get("succeeded")
        }
        first = cluster.items("pods", "--namespace", release, "--selector", f"job-name={job}")
        assert len(first) == 1
        cluster.kubectl("delete", "pod", first[0]["metadata"]["name"], "--namespace", release)
        output, _ = follow.communicate(timeout=1500)
    finally:
        follow.kill()
    assert follow.returncode == 0, output[-4000:]
    controller = cluster.get("job", job, "--namespace", release)
    assert controller["status"].get("succeeded") == 1
    # A deleted pod leaves the API: what remains is the Job's second pod, which finished.
    pods = cluster.items("pods", "--namespace", release, "--selector", f"job-name={job}")
    assert [p["metadata"]["name"] for p in pods] != [first[0]["metadata"]["name"]]
    assert len(pods) == 1, "the controller Job started more than one replacement"
    # The replacement's exit was a disruption (143: Ignore), not a failure counted.
    assert not controller["status"].get("failed"), controller["status"]

    status = check_succeeded(cluster, storage, env, run_id)
    assert done_before <= {stage_of(j) for j in stage_jobs(cluster, run_id)}
    models = run_json(mlbatch("models", "--storage", storage, "--output", "json", env=env))
    flights = [m for m in models if m["name"] == "flights-delay"]
    assert flights and flights[0]["aliases"].get("production"), models

    latencies = pod_start_latencies(cluster, release, run_id)
    assert latencies, "no stage pod started"
    values = sorted(latencies.values())
    measured = {
        "run_id": run_id, "wall_s": status.get("wall_s"),
        "pod_start_s": latencies,
        "pod_start_p50_s": statistics.median(values),
        "pod_start_p95_s": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
    }  # fmt: skip
    (STATE / "demo-measurements.json").write_text(json.dumps(measured, indent=2))
    print(json.dumps(measured, indent=2))
