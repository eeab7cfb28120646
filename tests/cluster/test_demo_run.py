"""The flights demo (sampled) on a real cluster: from the chart's suspended CronJob with
`make k8s-run`, then from the host CLI with `--executor kubernetes`. Every stage attempt is
a real Job and pod from the built images on the in-cluster SeaweedFS; the run succeeds, the
model is registered and promoted, and the host reads it all through a port-forward."""

from __future__ import annotations

import json
import statistics
from datetime import datetime

import pytest

from mlbatch.spec import STAGES
from tests.cluster.conftest import RELEASE, make
from tests.cluster.kube import STATE, Cluster
from tests.integration.pipeline_checks import mlbatch, run_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_data(storage_env):
    storage, env = storage_env
    result = mlbatch("demo-data", "--storage", storage, env=env)
    assert result.returncode == 0, result.stderr
    return storage, env


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


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


def _find_run(storage: str, env: dict, name: str) -> dict:
    runs = run_json(mlbatch("runs", "--storage", storage, "--output", "json", env=env))
    found = [r for r in runs if name in (r.get("name"), r.get("run_id"))]
    assert found, f"no run named {name} in {runs}"
    return found[0]


def _check_succeeded(cluster: Cluster, storage: str, env: dict, run_id: str) -> dict:
    status = run_json(mlbatch("status", run_id, "--storage", storage, "--output", "json", env=env))
    assert status["state"] == "succeeded", status
    jobs = cluster.items("jobs", "--namespace", RELEASE, "--selector", f"mlbatch.io/run={run_id}")
    stages_run = {j["metadata"]["labels"]["mlbatch.io/stage"] for j in jobs}
    assert stages_run == set(STAGES) - {"predict"} or stages_run == set(STAGES), stages_run
    # One Job per attempt and no duplicates: every stage ran once.
    assert len(jobs) == len(stages_run), [j["metadata"]["name"] for j in jobs]
    log = mlbatch("logs", run_id, "train", "--storage", storage, env=env)
    assert log.returncode == 0 and log.stdout.strip(), log.stderr
    return status


def test_demo_from_the_cronjob(cluster: Cluster, release: str, demo_data):
    storage, env = demo_data
    job = "mlbatch-ci-demo"
    make("k8s-run", RUN_JOB=job, K8S_NAMESPACE=release, HELM_RELEASE=RELEASE, timeout=1500)
    controller = cluster.get("job", job, "--namespace", release)
    assert controller["status"].get("succeeded") == 1
    run_id = _find_run(storage, env, job)["run_id"]
    status = _check_succeeded(cluster, storage, env, run_id)

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


def test_demo_from_the_host_cli(cluster: Cluster, release: str, demo_data, demo_spec):
    storage, env = demo_data
    # Another sample seed: new inputs, so every stage runs again instead of the cache.
    result = mlbatch(
        "run", str(demo_spec), "--executor", "kubernetes", "--namespace", release,
        "--context", "mlbatch", "--storage", storage, "--set", "etl.seed=7",
        "--output", "json", env={**env, "KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    run_id = run_json(result)["run_id"]
    _check_succeeded(cluster, storage, env, run_id)
