"""The Dask engine against the pandas engine on the same inputs: equal rows (as sets, sorted
by the keys), equal counts, from every format and sniffed CSV dialect; and the stage on an
existing scheduler (DASK_SCHEDULER_ADDRESS), on file:// and on a real S3 server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster
from etl_synthetic import KEYS, synthetic, synthetic_spec
from test_etl_stage import flights_etl, flights_raw, make_run, read_table, run_etl

from mlbatch import storage
from mlbatch.manifest import load_manifest
from mlbatch.spec import validate_spec
from mlbatch_jobs.etl import engine_dask, engine_pandas, output
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import build_plan

pytestmark = pytest.mark.slow  # one Dask cluster of two worker processes for the module


@pytest.fixture(scope="module")
def cluster(seaweedfs):
    """Two worker processes that can reach the test S3 server (credentials in their env)."""
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        env=seaweedfs.env(),
    ) as cluster:  # fmt: skip
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster) as client:
        yield client


def plan_for(root: str, document: dict):
    spec = validate_spec(document)
    files = {n: resolve_files(n, s, root) for n, s in spec.etl.sources.items()}
    return build_plan(spec, files)


def assemble(parts, tmp_path, outcome, *, sample=None) -> pa.Table:
    hashes = outcome.summary.smallest_hashes
    limit = None if hashes is None else (hashes[-1], int((hashes == hashes[-1]).sum()))
    out = tmp_path / "out"
    out.mkdir()
    output.assemble_parts(parts, out, partition_by=[], hash_limit=limit)
    return pq.read_table(out / "table.parquet")


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in KEYS]).combine_chunks()


def test_both_engines_give_the_same_rows_and_counts(file_storage, client, tmp_path):
    synthetic(file_storage)
    plan = plan_for(file_storage, synthetic_spec())
    expected, by_pandas = engine_pandas.run(plan)
    parts, by_dask = engine_dask.run(
        plan, client, partition_bytes=64 << 10, parts_uri=f"file://{tmp_path}/parts",
        sample=None, seed=0,
    )  # fmt: skip
    assert len(parts) > 8  # many blocks, shuffled for the dedupe
    got = assemble(parts, tmp_path, by_dask)
    assert got.schema == expected.schema
    assert sorted_rows(got).equals(sorted_rows(expected))
    assert by_dask.steps == by_pandas.steps
    assert by_dask.rows_read == by_pandas.rows_read == 20_500
    assert by_dask.coercion.bad == by_pandas.coercion.bad and by_pandas.coercion.bad["delay"] > 0
    assert by_dask.summary.checks == by_pandas.summary.checks
    assert by_dask.duplicates == by_pandas.duplicates
    assert by_pandas.duplicates[0] == (0, []) and by_pandas.duplicates[3][0] > 1000
    dedupe = by_pandas.steps[4]
    assert dedupe["rows_out"] < dedupe["rows_in"]  # the duplicated flights went


def test_both_engines_sample_the_same_rows(file_storage, client, tmp_path):
    synthetic(file_storage)
    plan = plan_for(file_storage, synthetic_spec())
    expected, _ = engine_pandas.run(plan, sample=700, seed=5)
    parts, outcome = engine_dask.run(
        plan, client, partition_bytes=64 << 10, parts_uri=f"file://{tmp_path}/parts",
        sample=700, seed=5,
    )  # fmt: skip
    got = assemble(parts, tmp_path, outcome, sample=700)
    assert got.num_rows == expected.num_rows == 700
    assert sorted_rows(got).equals(sorted_rows(expected))


def test_both_engines_sample_the_same_rows_when_only_some_blocks_have_nulls(
    file_storage, client, tmp_path
):
    """An integer column empty only in the last third: blocks with and without its nulls
    must hash a row alike, or the engines (slicing differently) sample different rows."""
    rows = 6000
    lines = ["id,wind,late"] + [
        f"{i},{'' if i > 2 * rows // 3 else i % 40},{str(i % 3 == 0).lower()}" for i in range(rows)
    ]  # fmt: skip
    storage.write_bytes(storage.join(file_storage, "raw/flights.csv"), "\n".join(lines).encode())
    document = {"name": "nulls", "target": "late",
                "etl": {"sources": {"flights": {"uri": "raw/flights.csv"}}}}  # fmt: skip
    plan = plan_for(file_storage, document)
    expected, _ = engine_pandas.run(plan, sample=1000, seed=9)
    parts, outcome = engine_dask.run(
        plan, client, partition_bytes=8 << 10, parts_uri=f"file://{tmp_path}/parts",
        sample=1000, seed=9,
    )  # fmt: skip
    assert len(parts) > 4
    got = assemble(parts, tmp_path, outcome, sample=1000)
    assert got["wind"].null_count > 0 and got["wind"].type == expected["wind"].type
    keys = [("id", "ascending")]
    assert got.sort_by(keys).equals(expected.sort_by(keys))


def test_the_stage_runs_on_an_existing_scheduler(file_storage, cluster):
    flights_raw(file_storage)
    by_pandas = make_run(file_storage, flights_etl())
    by_dask = make_run(file_storage, flights_etl(engine="dask", output={"partition_by": ["month"]}))
    assert run_etl(by_pandas).returncode == 0
    result = run_etl(by_dask, {"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address})
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, _ = load_manifest(by_dask, "etl")
    assert manifest.metrics["engine"] == "dask"
    assert manifest.metrics["steps"] == load_manifest(by_pandas, "etl")[0].metrics["steps"]
    assert "dataset/month=2/part-0.parquet" in manifest.outputs
    keys = [("day", "ascending"), ("carrier", "ascending")]
    assert read_table(by_dask).sort_by(keys).equals(read_table(by_pandas).sort_by(keys))


def test_s3_sources_on_dask_write_their_parts_to_the_bucket(s3_env, cluster):
    synthetic(s3_env, rows=3100)
    document = synthetic_spec(engine="dask", dask={"partition_mb": 1})
    layout = make_run(s3_env, document["etl"], target="late")
    result = run_etl(layout, {"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address})
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, _ = load_manifest(layout, "etl")
    assert manifest.metrics["rows_in"]["flights"] == 3600
    attempt = layout.attempt_uri("etl", manifest.attempt)
    assert not [u for u in storage.list_uris(attempt) if "/_parts/" in u]  # cleaned up
    externals = sorted(i.uri.rsplit("/", 1)[-1] for i in manifest.inputs if i.kind == "external")
    assert externals == ["airlines.csv", "part-0.csv", "part-1.csv.gz", "part-2.csv",
                         "planes.jsonl", "weather.parquet"]  # fmt: skip


def test_the_stage_starts_its_own_local_cluster(file_storage):
    flights_raw(file_storage)
    layout = make_run(file_storage, flights_etl(engine="dask", dask={"workers": 1}))
    result = run_etl(layout, {"DASK_SCHEDULER_ADDRESS": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert load_manifest(layout, "etl")[0].metrics["engine"] == "dask"
    assert read_table(layout).num_rows == 4


def readable_frame(rows: int = 3000, seed: int = 5, newlines: bool = False) -> pd.DataFrame:
    """A main source with decimals, gaps, non-ASCII text, and separators inside values."""
    rng = np.random.default_rng(seed)
    delay = rng.normal(10, 30, rows).round(1)
    delay[rng.random(rows) < 0.05] = np.nan
    notes = np.array(["on time; mostly", "late, again", 'said "soon"', "Zürich–Köln"])
    note = notes[rng.integers(0, 4, rows)]
    if newlines:
        note[::7] = "two\nlines"
    return pd.DataFrame({
        "day": rng.integers(1, 30, rows), "carrier": np.array(["UA", "ÅR", "B6"])[rng.integers(
            0, 3, rows)], "flight": np.arange(rows), "delay": delay, "note": note,
    })  # fmt: skip


READABLE = {
    "flights.csv": lambda frame, path: frame.to_csv(path, index=False),
    "flights-eu.csv": lambda frame, path: frame.to_csv(
        path, sep=";", decimal=",", index=False, encoding="cp1252"
    ),
    "flights.xlsx": lambda frame, path: frame.to_excel(path, index=False),
    "flights.jsonl": lambda frame, path: frame.to_json(path, orient="records", lines=True),
    "flights-bom.tsv": lambda frame, path: frame.to_csv(
        path, sep="\t", index=False, encoding="utf-8-sig"
    ),
}


def both_engines(root: str, client, tmp_path, name: str) -> tuple[pa.Table, pa.Table, int]:
    """(pandas engine's table, Dask engine's table, Dask blocks) for one main source."""
    document = {"name": "formats", "target": "late", "etl": {
        "sources": {"flights": {"uri": f"raw/{name}"}},
        "steps": [{"filter": "delay.notna()"}, {"derive": {"late": "delay > 15"}}],
    }}  # fmt: skip
    plan = plan_for(root, document)
    expected, _ = engine_pandas.run(plan)
    parts, outcome = engine_dask.run(
        plan, client, partition_bytes=16 << 10, parts_uri=f"file://{tmp_path}/parts-{name}",
        sample=None, seed=0,
    )  # fmt: skip
    out = tmp_path / f"out-{name}"
    out.mkdir()
    output.assemble_parts(parts, out, partition_by=[], hash_limit=None)
    return expected, pq.read_table(out / "table.parquet"), len(parts)


@pytest.mark.parametrize("name", ["flights-eu.csv", "flights.xlsx", "flights.jsonl"])
def test_both_engines_read_every_format_as_the_plain_csv(file_storage, client, tmp_path, name):
    """A sniffed European CSV and JSON Lines (split into many blocks) and a workbook: the
    rows and values the pandas engine reads from the plain CSV, on both engines."""
    root = Path(file_storage.removeprefix("file://"))
    (root / "raw").mkdir(parents=True, exist_ok=True)
    frame = readable_frame()
    for each in ("flights.csv", name):
        READABLE[each](frame, root / "raw" / each)
    plain, _, _ = both_engines(file_storage, client, tmp_path, "flights.csv")
    by_pandas, by_dask, blocks = both_engines(file_storage, client, tmp_path, name)
    assert blocks == 1 if name.endswith(".xlsx") else blocks > 1  # a workbook is one block
    assert by_pandas.equals(plain)
    keys = [("flight", "ascending")]
    assert by_dask.sort_by(keys).equals(plain.sort_by(keys))


def test_quoted_newlines_keep_a_file_in_one_block_on_both_engines(file_storage, client, tmp_path):
    root = Path(file_storage.removeprefix("file://"))
    (root / "raw").mkdir(parents=True, exist_ok=True)
    READABLE["flights-bom.tsv"](readable_frame(newlines=True), root / "raw/flights-bom.tsv")
    by_pandas, by_dask, blocks = both_engines(file_storage, client, tmp_path, "flights-bom.tsv")
    assert blocks == 1 and by_pandas.num_rows > 2000
    assert "two\nlines" in by_pandas["note"].to_pylist()
    assert by_dask.equals(by_pandas)
