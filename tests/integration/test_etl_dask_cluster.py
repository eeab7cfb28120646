"""The etl stage on a Dask cluster of its own processes (`dask scheduler` and two `dask
worker`s, as the chart runs them): the stage only connects (DASK_SCHEDULER_ADDRESS), the
workers read the sources and write the parts straight from and to S3 with the keys of
their own environment, and the output is the pandas engine's, row for row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cloudpickle
import pytest
from distributed import Client
from etl_synthetic import synthetic, synthetic_spec
from seaweedfs import _die_with_parent, free_ports
from table_hash import sorted_sha256
from test_etl_stage import flights_etl, flights_raw, make_run, read_table, run_etl

from mlbatch import storage
from mlbatch.codeversion import ENV_VAR as CODE_VERSION_ENV
from mlbatch.codeversion import code_version
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest
from mlbatch_jobs.etl import dask_cluster
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import build_plan

pytestmark = pytest.mark.slow  # a scheduler and two worker processes for the module
START_TIMEOUT_S = 60


class DaskProcesses:
    """A scheduler and its workers, each its own process group, killed with the test."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory, self.env = directory, env
        self.processes: list[subprocess.Popen] = []
        self.address = f"tcp://127.0.0.1:{free_ports(1)[0]}"

    def start(self, workers: int, memory_limit: str = "1GiB") -> None:
        dask = str(Path(sys.executable).parent / "dask")
        port = self.address.rsplit(":", 1)[1]
        # The task stream keeps 1000 tasks by default; the tests count them all.
        scheduler_env = {"DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__STATUS__TASK_STREAM_LENGTH":
                         "100000"}  # fmt: skip
        self._spawn("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", port,
                                  "--no-dashboard"], scheduler_env)  # fmt: skip
        for i in range(workers):
            self._spawn(f"worker-{i}", [
                dask, "worker", self.address, "--name", f"worker-{i}", "--nworkers", "1",
                "--nthreads", "1", "--memory-limit", memory_limit, "--no-dashboard",
                "--local-directory", str(self.directory / f"worker-{i}"),
            ])  # fmt: skip

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> None:
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 (lives with the process)
        self.processes.append(subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})},
            start_new_session=True, preexec_fn=_die_with_parent,
        ))  # fmt: skip

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first: no reconnect attempts
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in
                         sorted(self.directory.glob("*.log")))  # fmt: skip


@pytest.fixture(scope="module")
def dask_processes(seaweedfs, tmp_path_factory):
    """A scheduler and two single-thread workers with 1 GiB each; the workers get the S3
    keys in their environment, as the chart's worker pods get them from the Secret."""
    env = {**os.environ, **seaweedfs.env(), CODE_VERSION_ENV: code_version("etl")}  # as images
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask"), env)
    try:
        cluster.start(workers=2)
        with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
            client.get_task_stream()  # installs the scheduler's task stream from here on
        yield cluster
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


@pytest.fixture
def client(dask_processes):
    with Client(dask_processes.address) as client:
        yield client


def tasks_per_worker(client, since: int) -> Counter:
    """Tasks each worker finished, of those after the first `since` in the task stream."""
    return Counter(task["worker"] for task in client.get_task_stream()[since:])


def test_on_s3_the_workers_do_the_work_and_match_the_pandas_engine(s3_env, dask_processes,
                                                                   client, seaweedfs):  # fmt: skip
    synthetic(s3_env, rows=60_000)
    by_pandas = make_run(s3_env, synthetic_spec(engine="pandas")["etl"], target="late")
    by_dask = make_run(s3_env, synthetic_spec(dask={"partition_mb": 1})["etl"], target="late")
    assert run_etl(by_pandas).returncode == 0
    before = len(client.get_task_stream())
    result = run_etl(by_dask, {"DASK_SCHEDULER_ADDRESS": dask_processes.address})
    assert result.returncode == 0, result.stdout + result.stderr + dask_processes.logs()
    manifest, _ = load_manifest(by_dask, "etl")
    assert manifest.metrics["engine"] == "dask"  # `auto`, with a scheduler given
    assert "auto: a Dask cluster is given" in manifest.metrics["engine_reason"]
    parts = storage.join(by_dask.attempt_uri("etl", manifest.attempt), "_parts")
    assert f"dask: parts in {parts}" in result.stdout  # written by the workers, to the bucket
    assert not [u for u in storage.list_uris(parts)]  # and removed after assembling
    expected, got = read_table(by_pandas), read_table(by_dask)
    assert got.num_rows == expected.num_rows > 20_000
    assert manifest.metrics["steps"] == load_manifest(by_pandas, "etl")[0].metrics["steps"]
    assert sorted_sha256(got) == sorted_sha256(expected)
    done = tasks_per_worker(client, before)
    assert sorted(done) == sorted(client.nthreads()), done  # both workers, nothing else
    assert min(done.values()) >= 3, done


def test_what_goes_to_the_workers_carries_no_keys(s3_env, seaweedfs):
    """The reader and the parts' filesystem pickle as "build me from the environment"."""
    synthetic(s3_env, rows=300)
    spec = synthetic_spec()
    from mlbatch.spec import validate_spec

    document = validate_spec(spec)
    files = {n: resolve_files(n, s, s3_env) for n, s in document.etl.sources.items()}
    plan = build_plan(document, files)
    filesystem, path = storage.arrow_filesystem(storage.join(s3_env, "_parts"))
    shipped = cloudpickle.dumps((plan.main, plan.steps, filesystem, path))
    assert seaweedfs.secret_key.encode() not in shipped
    assert seaweedfs.access_key.encode() not in shipped


def test_file_storage_works_when_the_workers_share_the_filesystem(file_storage, dask_processes):
    flights_raw(file_storage)
    by_pandas = make_run(file_storage, flights_etl(engine="pandas"))
    by_dask = make_run(file_storage, flights_etl(engine="dask"))
    assert run_etl(by_pandas).returncode == 0
    result = run_etl(by_dask, {"DASK_SCHEDULER_ADDRESS": dask_processes.address})
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted_sha256(read_table(by_dask)) == sorted_sha256(read_table(by_pandas))


def test_file_storage_the_workers_cannot_see_is_one_clear_error(client, tmp_path):
    """What a worker on another machine sees of this one's files: nothing."""
    elsewhere = tmp_path / "only-on-the-stage-machine"
    with pytest.raises(BadInput) as error:
        dask_cluster.require_shared_files(client, [tmp_path, elsewhere])
    assert str(error.value).startswith("file:// storage on a remote Dask cluster: worker tcp://")
    assert f"cannot see {elsewhere} " in str(error.value)
    dask_cluster.require_shared_files(client, [tmp_path])  # what they share passes


def test_workers_of_other_etl_code_are_one_clear_error(file_storage, dask_processes):
    """Workers left on an older image (the chart's dask.imageTag not bumped)."""
    flights_raw(file_storage)
    layout = make_run(file_storage, flights_etl(engine="dask"))
    env = {"DASK_SCHEDULER_ADDRESS": dask_processes.address, CODE_VERSION_ENV: "0123456789ab"}
    result = run_etl(layout, env)
    assert result.returncode == 2, result.stdout + result.stderr
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert f"runs etl code {code_version('etl')}, but this stage is 0123456789ab" in last
    assert "redeploy the chart with dask.imageTag=0123456789ab" in last


def test_an_unreachable_scheduler_is_one_line_and_retryable(file_storage):
    flights_raw(file_storage)
    layout = make_run(file_storage, flights_etl(engine="dask"))
    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    result = run_etl(layout, {"DASK_SCHEDULER_ADDRESS": address, "MLBATCH_DASK_CONNECT_S": "2"})
    assert result.returncode == 1
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert f"cannot reach the Dask scheduler at {address} (DASK_SCHEDULER_ADDRESS)" in last
