"""Faults on a real cluster, each with what was lost counted (nothing): a stage that exits
2, a stage over its memory limit, an image not on the node, a missing ServiceAccount, a GPU
nobody has, `mlbatch cancel`, and the controller's pod deleted mid-stage."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from cluster_runs import find_run, mlbatch, new_sample, run_json, stage_jobs
from kube_cluster import RELEASE, Cluster, wait_until

pytestmark = pytest.mark.slow

# Faults hit the first stages: etl needs only the raw files, so each case takes seconds.
ONLY_ETL = ["--set", "execution.retries=2"]


def host_run(
    cluster: Cluster, storage_env, spec, *extra: str, env: dict | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess, float]:
    """`mlbatch run --executor kubernetes` from the host; the result and its wall time."""
    storage, storage_environment = storage_env
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mlbatch.controller.cli", "run", str(spec),
         "--executor", "kubernetes", "--namespace", RELEASE, "--context", "mlbatch",
         "--storage", storage, "--output", "json", "--force", "etl", *extra],
        capture_output=True, text=True, timeout=timeout,
        env={**cluster.env, **storage_environment, **(env or {})},
    )  # fmt: skip
    return result, time.monotonic() - started


def failed_stage(storage_env, run_id: str) -> dict:
    storage, env = storage_env
    status = run_json(mlbatch("status", run_id, "--storage", storage, "--output", "json", env=env))
    assert status["state"] == "failed", status
    failed = [
        {"stage": name, **s} for name, s in status["stages"].items() if s.get("state") == "failed"
    ]
    assert failed, status
    return failed[0]


def run_id_of(result: subprocess.CompletedProcess) -> str:
    return run_json(result)["run_id"]


@pytest.fixture(scope="module")
def raw_data(storage_env, release):
    storage, env = storage_env
    assert mlbatch("demo-data", "--storage", storage, env=env).returncode == 0
    return storage_env


def test_a_stage_that_exits_2_fails_at_once_without_retries(cluster, raw_data, demo_spec):
    # A declared type the data does not have (carrier codes are text): etl, reading the
    # rows, stops with exit 2 (bad input), never retried.
    result, _ = host_run(
        cluster,
        raw_data,
        demo_spec,
        *ONLY_ETL,
        "--set",
        "etl.sources.flights.columns.carrier=int64",
    )
    assert result.returncode != 0
    run_id = run_id_of(result)
    jobs = stage_jobs(cluster, run_id, "etl")
    assert len(jobs) == 1, "a bad-input failure was retried"
    conditions = {c["type"]: c for c in jobs[0]["status"]["conditions"]}
    assert conditions["Failed"]["reason"] == "PodFailurePolicy", conditions
    assert "carrier" in failed_stage(raw_data, run_id)["reason"]


def test_a_stage_over_its_memory_limit_is_reported_as_oomkilled(cluster, raw_data, demo_spec):
    result, _ = host_run(
        cluster,
        raw_data,
        demo_spec,
        "--set",
        "execution.retries=0",
        "--set",
        "execution.stages.etl.memory=120Mi",
    )
    assert result.returncode != 0
    assert "OOMKilled" in failed_stage(raw_data, run_id_of(result))["reason"]


# Each of these never gets a stage running; each must fail long before the attempt's
# hour-long deadline, with Kubernetes' own reason in the error.
BOUNDED_S = 240


@pytest.mark.parametrize(
    ("case", "env", "overrides", "reason"),
    [
        ("image not on the node",
         {"MLBATCH_K8S_IMAGE_REPOSITORY": "localhost/not-built",
          "MLBATCH_K8S_IMAGE_PULL_POLICY": "Never"},
         [], "ErrImageNeverPull"),
        ("missing ServiceAccount", {"MLBATCH_K8S_STAGE_SERVICE_ACCOUNT": "nobody",
                                    "MLBATCH_K8S_CREATE_TIMEOUT_S": "20"}, [], "FailedCreate"),
        ("GPU nobody has", {"MLBATCH_K8S_UNSCHEDULABLE_TIMEOUT_S": "30"},
         ["--set", "execution.stages.etl.gpu=1"], "Unschedulable"),
    ],
)  # fmt: skip
def test_a_pod_that_never_runs_fails_within_a_bounded_time(
    cluster, raw_data, demo_spec, case, env, overrides, reason
):
    result, wall_s = host_run(
        cluster, raw_data, demo_spec, "--set", "execution.retries=1", *overrides, env=env
    )
    assert result.returncode != 0, case
    error = failed_stage(raw_data, run_id_of(result))["reason"]
    assert reason in error, (case, error)
    assert wall_s < BOUNDED_S, f"{case}: failed after {wall_s:.0f}s"
    # Nothing left behind that could still start later.
    pods = cluster.items(
        "pods", "--namespace", RELEASE, "--selector", f"mlbatch.io/run={run_id_of(result)}"
    )
    assert all(p["status"]["phase"] != "Running" for p in pods)


def test_cancel_deletes_stage_jobs_and_the_controller_job_does_not_restart(
    cluster, release, raw_data, demo_spec
):
    storage, env = raw_data
    job = f"mlbatch-ci-cancel-{int(time.time())}"
    start_controller_job(cluster, release, job, *new_sample(demo_spec, 11))
    runs = wait_until(
        "the cancelled run's running etl Job",
        lambda: _running_etl(cluster, release) and find_run(storage, env, job),
        timeout=180,
    )
    run_id = runs["run_id"]
    cancel = mlbatch("cancel", run_id, "--storage", storage, env=env)
    assert cancel.returncode == 0, cancel.stderr
    wait_until("the stage Jobs to go", lambda: not stage_jobs(cluster, run_id), timeout=120)
    controller = wait_until(
        "the controller Job to end",
        lambda: (
            lambda j: j if j["status"].get("failed") or j["status"].get("succeeded") else None
        )(cluster.get("job", job, "--namespace", release)),
        timeout=180,
    )
    # One controller pod: ending on exit 6 (FailJob), not restarted into launching again.
    pods = cluster.items("pods", "--namespace", release, "--selector", f"job-name={job}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 6
    assert controller["status"].get("failed") == 1
    time.sleep(10)
    assert not stage_jobs(cluster, run_id), "stages were launched after the cancel"


def _running_etl(cluster: Cluster, namespace: str) -> bool:
    jobs = cluster.items("jobs", "--namespace", namespace, "--selector", "mlbatch.io/stage=etl")
    return any(j["status"].get("active") for j in jobs)


def start_controller_job(cluster: Cluster, namespace: str, name: str, *args: str) -> None:
    """A run from the CronJob's template, as `kubectl create job --from=cronjob/...` makes
    it, with extra controller arguments (a new sample seed: nothing comes from the cache)."""
    cronjob = cluster.get("cronjob", RELEASE, "--namespace", namespace)
    template = cronjob["spec"]["jobTemplate"]
    template["spec"]["template"]["spec"]["containers"][0]["args"] += list(args)
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": template.get("metadata", {}).get("labels", {})},
           "spec": template["spec"]}  # fmt: skip
    cluster.kubectl("create", "-f", "-", input=json.dumps(job))
