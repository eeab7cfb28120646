"""The etl stage on `dask worker`s with small memory limits: a table larger than a
worker's limit, in one Parquet row group (one block), is read, transformed and written a
slice at a time and gives the pandas engine's rows; a worker restarted for memory ends
the stage with one retryable line that names the cause."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client
from table_hash import sorted_sha256
from test_etl_dask_cluster import START_TIMEOUT_S, DaskProcesses
from test_etl_stage import error_line, make_run, read_table, run_etl

from mlbatch import storage
from mlbatch.manifest import load_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import flights_synthetic  # noqa: E402

pytestmark = pytest.mark.slow  # a scheduler and worker processes per test


def start(tmp_path: Path, *, workers: int, memory: str, env: dict | None = None):
    import os

    cluster = DaskProcesses(tmp_path / "dask", {**os.environ, **(env or {})})
    (tmp_path / "dask").mkdir()
    cluster.start(workers=workers, memory_limit=memory)
    with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
    return cluster


def flights_spec(raw: str) -> dict:
    """The flights joins on the synthetic table (bench/flights_synthetic.py)."""
    return {
        "sources": {
            "flights": {"uri": f"{raw}/flights/*.parquet"},
            "weather": {
                "uri": f"{raw}/weather.csv",
                "columns": {"time_hour": {"type": "timestamp", "timezone": "UTC"}},
            },
            "planes": {"uri": f"{raw}/planes.csv"},
            "airlines": {"uri": f"{raw}/airlines.csv"},
        },  # fmt: skip
        "main": "flights",
        "steps": [
            {"join": {"source": "weather", "on": ["origin", "time_hour"]}},
            {"join": {"source": "planes", "on": ["tailnum"]}},
            {"join": {"source": "airlines", "on": ["carrier"]}},
            {"filter": "arr_delay.notna()"},
            {"derive": {"delayed": "arr_delay > 15"}},
        ],
        "validation": [
            {
                "rule": "unique",
                "columns": [
                    "year",
                    "month",
                    "day",
                    "carrier",
                    "flight",
                    "origin",
                    "sched_dep_time",
                ],
                "severity": "warn",
            }
        ],  # fmt: skip
    }


def test_a_table_larger_than_a_worker_matches_the_pandas_engine(file_storage, tmp_path):
    """1M rows in one row group, 337 MiB in memory once joined: more than a 300 MB worker
    holds, so it passes only if the block is done a slice at a time."""
    raw = flights_synthetic.generate(1_000_000, root=tmp_path / "raw")
    etl = flights_spec(storage.resolve_uri(str(raw)))
    by_pandas = make_run(file_storage, {**etl, "engine": "pandas"})
    by_dask = make_run(file_storage, {**etl, "engine": "dask"})
    assert run_etl(by_pandas).returncode == 0
    cluster = start(tmp_path, workers=2, memory="300MB")
    try:
        result = run_etl(by_dask, {"DASK_SCHEDULER_ADDRESS": cluster.address})
        with Client(cluster.address) as client:
            restarts = client.get_events("worker-restart-memory")
    finally:
        cluster.stop()
    assert result.returncode == 0, result.stdout + result.stderr + cluster.logs()
    assert not restarts, restarts
    assert "slices of" in result.stdout
    expected, got = read_table(by_pandas), read_table(by_dask)
    assert got.num_rows == expected.num_rows > 900_000
    assert got.nbytes > 300 * 2**20  # the output alone is larger than a worker's limit
    assert sorted_sha256(got) == sorted_sha256(expected)
    steps = load_manifest(by_dask, "etl")[0].metrics["steps"]
    assert steps == load_manifest(by_pandas, "etl")[0].metrics["steps"]


def test_a_worker_restarted_for_memory_is_one_retryable_line(file_storage, tmp_path):
    """Rows of 100 kB of text: a slice sized for short text is 400 MB, past a 250 MB
    worker's limit; its nanny restarts it and (no retries allowed) the stage says so."""
    raw = Path(storage.local_path(file_storage)) / "raw"
    raw.mkdir(parents=True)
    rows = 4000
    table = pa.table({
        "id": np.arange(rows), "delayed": np.arange(rows) % 2 == 0,
        "note": pa.array(["x" * 100_000] * rows, pa.large_string()),
    })  # fmt: skip
    pq.write_table(table, raw / "notes.parquet", row_group_size=rows, compression="zstd")
    del table
    layout = make_run(file_storage, {"sources": {"notes": {"uri": "raw/notes.parquet"}},
                                     "main": "notes", "engine": "dask"})  # fmt: skip
    scheduler = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    cluster = start(tmp_path, workers=1, memory="250MB", env=scheduler)
    try:
        result = run_etl(layout, {"DASK_SCHEDULER_ADDRESS": cluster.address})
    finally:
        cluster.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    last = error_line(result)
    assert last.startswith("etl: a Dask worker passed its memory limit (238 MiB"), last
    assert "and was restarted" in last and "dask.worker.resources" in last, last
    assert "etl.dask.partition_mb" in last, last
    assert load_manifest(layout, "etl") is None  # nothing committed
