"""The etl stage on the chart's Dask cluster (`dask.enabled`): a scheduler and two worker
pods from the etl image. The etl Job gets DASK_SCHEDULER_ADDRESS from the settings
ConfigMap and, with `engine: auto`, runs there; its table is the one a local pandas-engine
run of the same spec writes, and both worker pods ran tasks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest
from cluster_runs import find_run, mlbatch, new_sample
from kube_cluster import RELEASE, REPO, Cluster, wait_until
from table_hash import sorted_sha256

from mlbatch import arrow_s3, runs, storage
from mlbatch.manifest import load_manifest
from mlbatch.spec import validate_spec
from mlbatch.spec.loader import parse_yaml

pytestmark = pytest.mark.slow

SCHEDULER = f"{RELEASE}-dask-scheduler"
WORKERS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=dask-worker"
# Several blocks of the 30 MB flights CSV, so there is work for both workers.
PARTITION_MB = 4
# Run in the scheduler pod (the etl image has Python and distributed): install the
# scheduler's task stream before the run, then count its tasks per worker after it.
CONNECT = "from distributed import Client; c = Client('tcp://127.0.0.1:8786', timeout=30)"
INSTALL = f"{CONNECT}; c.get_task_stream()"
COUNT = (
    f"import json, collections; {CONNECT}; "
    "print(json.dumps(collections.Counter(t['worker'] for t in c.get_task_stream())))"
)


def etl_version() -> str:
    return subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "mlbatch.codeversion", "etl"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def upgrade(cluster: Cluster, namespace: str, *sets: str) -> None:
    args = [arg for value in sets for arg in ("--set", value)]
    cluster.helm(
        "upgrade", RELEASE, str(REPO / "charts/mlbatch"), "--namespace", namespace,
        "--reuse-values", *args, "--wait", "--timeout", "5m",
    )  # fmt: skip


@pytest.fixture(scope="module")
def dask_cluster(cluster: Cluster, release: str):
    """The release upgraded with a Dask cluster small enough for the CI node (two CPUs);
    removed again afterwards. Yields the worker pods' IPs."""
    upgrade(
        cluster, release, "dask.enabled=true", f"dask.imageTag={etl_version()}",
        "dask.workers=2", "dask.scheduler.resources.requests.cpu=50m",
        "dask.worker.resources.requests.cpu=100m", "dask.worker.resources.limits.cpu=1",
        "dask.worker.resources.requests.memory=1Gi", "dask.worker.resources.limits.memory=1536Mi",
    )  # fmt: skip
    try:
        ips = wait_until(
            "two ready Dask worker pods",
            lambda: _ready_worker_ips(cluster, release),
            timeout=180,
            interval=3,
        )
        yield ips
    finally:
        upgrade(cluster, release, "dask.enabled=false")


def _ready_worker_ips(cluster: Cluster, namespace: str) -> set[str] | None:
    pods = cluster.items("pods", "--namespace", namespace, "--selector", WORKERS)
    ready = {
        p["status"]["podIP"]
        for p in pods
        if p["status"].get("containerStatuses")
        and all(s["ready"] for s in p["status"]["containerStatuses"])
    }
    return ready if len(ready) == 2 and len(pods) == 2 else None


def in_scheduler(cluster: Cluster, namespace: str, code: str) -> str:
    result = cluster.kubectl(
        "exec", f"deployment/{SCHEDULER}", "--namespace", namespace, "--", "python", "-c", code
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


@pytest.fixture
def host_storage(storage_env, monkeypatch):
    """This process's storage calls go to the in-cluster SeaweedFS (the port-forward)."""
    storage_uri, env = storage_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    storage.s3_client.cache_clear()
    arrow_s3.from_environment.cache_clear()
    yield storage_uri, env
    storage.s3_client.cache_clear()
    arrow_s3.from_environment.cache_clear()


def read_table(layout: runs.RunLayout):
    manifest, _ = load_manifest(layout, "etl")
    uri = storage.join(layout.attempt_uri("etl", manifest.attempt), "table.parquet")
    return manifest, pq.read_table(io.BytesIO(storage.read_bytes(uri)))


def test_the_etl_stage_runs_on_both_dask_workers_and_matches_pandas(
    cluster, release, dask_cluster, host_storage, demo_spec, tmp_path
):
    storage_uri, env = host_storage
    assert mlbatch("demo-data", "--storage", storage_uri, env=env).returncode == 0
    in_scheduler(cluster, release, INSTALL)
    name = f"mlbatch-ci-dask-{int(time.time())}"
    # A sample of its own: explore may commit before the cancel below, and the demo test's
    # run must not take it from the cache.
    sample = new_sample(demo_spec, 23)
    log = tmp_path / "controller.log"  # a file, not a pipe nobody reads while it runs
    with log.open("w") as sink:
        controller = subprocess.Popen(
            [sys.executable, "-m", "mlbatch.controller.cli", "run", str(demo_spec),
             "--executor", "kubernetes", "--namespace", release, "--context", "mlbatch",
             "--storage", storage_uri, "--run-name", name, "--force", "etl",
             "--set", f"etl.dask.partition_mb={PARTITION_MB}", *sample, "--output", "json"],
            stdout=sink, stderr=subprocess.STDOUT, env={**cluster.env, **env},
        )  # fmt: skip
    try:
        # Meanwhile, the same etl on this machine with the pandas engine.
        document = parse_yaml(demo_spec.read_text())
        document["etl"].update(
            engine="pandas",
            dask={"partition_mb": PARTITION_MB},
            seed=int(sample[1].partition("=")[2]),
        )
        local = runs.RunLayout(storage_uri, runs.new_run_id())
        runs.write_spec(local, validate_spec(document).model_dump(mode="json"))
        by_pandas = subprocess.run(
            [sys.executable, "-m", "mlbatch_jobs.etl", "--run", local.uri, "--attempt", "1-aaaa"],
            capture_output=True, text=True, timeout=300, env={**cluster.env, **env,
                                                              "DASK_SCHEDULER_ADDRESS": ""},
        )  # fmt: skip
        assert by_pandas.returncode == 0, by_pandas.stdout[-3000:] + by_pandas.stderr[-3000:]
        status = wait_until(
            "the cluster run's etl stage to commit",
            lambda: _etl_done(storage_uri, env, name, controller, log),
            timeout=240,
            interval=3,
        )
    finally:
        run = find_run(storage_uri, env, name)
        if run is not None:
            mlbatch("cancel", run["run_id"], "--storage", storage_uri, env=env)
        try:
            controller.wait(timeout=120)
        except subprocess.TimeoutExpired:
            controller.kill()
            controller.wait()
    assert status["stages"]["etl"]["state"] == "succeeded", status

    manifest, by_dask = read_table(runs.RunLayout(storage_uri, status["run_id"]))
    _, expected = read_table(local)
    assert manifest.metrics["engine"] == "dask", manifest.metrics["engine_reason"]
    reason = manifest.metrics["engine_reason"]
    assert reason == f"auto: a Dask cluster is given (tcp://{SCHEDULER}.{release}.svc:8786)"
    assert by_dask.num_rows == expected.num_rows > 1000
    assert sorted_sha256(by_dask) == sorted_sha256(expected)

    tasks = Counter(json.loads(in_scheduler(cluster, release, COUNT)))
    by_ip = Counter()
    for worker, count in tasks.items():
        by_ip[worker.removeprefix("tcp://").rsplit(":", 1)[0]] += count
    assert set(by_ip) == dask_cluster and min(by_ip.values()) > 0, (by_ip, dask_cluster)


def _etl_done(storage_uri: str, env: dict, name: str, controller, log) -> dict | None:
    run = find_run(storage_uri, env, name)
    state = ((run or {}).get("stages", {}).get("etl") or {}).get("state")
    if state in ("succeeded", "failed"):
        return run
    if controller.poll() is not None:  # ended before etl did: say why
        raise AssertionError(log.read_text()[-4000:])
    return None
