"""Sources on a real S3 server (SeaweedFS): a glob of gzipped CSVs, a prefix of Parquet parts,
a zipped CSV and JSON Lines, read by the stage process, outputs committed to the bucket."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
from test_etl_stage import error_line, make_run, output, read_table, run_etl, write_raw

from mlbatch import storage
from mlbatch.manifest import load_manifest


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def zipped(name: str, text: str) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr(name, text)
    return sink.getvalue()


def test_every_kind_of_source_on_s3(s3_env: str):
    write_raw(s3_env, {
        "raw/trips/2013-01.csv.gz": gzip.compress(b"trip,city,km\n1,oslo,3.5\n2,lima,12\n"),
        "raw/trips/2013-02.csv.gz": gzip.compress(b"trip,city,km\n3,oslo,7\n"),
        "raw/trips/notes.txt": b"not a source",
        "raw/cities/part-0.parquet": parquet_bytes(pa.table({"city": ["oslo"], "pop": [0.7]})),
        "raw/cities/part-1.parquet": parquet_bytes(pa.table({"city": ["lima"], "pop": [10.0]})),
        "raw/cities/_SUCCESS": b"",
        "raw/fares.csv.zip": zipped("fares.csv", "trip,fare\n1,10\n2,30\n3,15\n"),
        "raw/riders.jsonl": b'{"trip": 1, "rider": "ann"}\n{"trip": 3, "rider": "bob"}\n',
    })  # fmt: skip
    etl = {
        "sources": {
            "trips": {"uri": "raw/trips/*.csv.gz"},
            "cities": {"uri": "raw/cities/"},
            "fares": {"uri": "raw/fares.csv.zip"},
            "riders": {"uri": "raw/riders.jsonl"},
        },
        "steps": [
            {"join": {"source": "cities", "on": ["city"]}},
            {"join": {"source": "fares", "on": ["trip"]}},
            {"join": {"source": "riders", "on": ["trip"]}},
            {"derive": {"expensive": "fare / km > 2.6"}},
        ],
        "validation": [{"rule": "not_null", "columns": ["pop", "fare"]}],
    }
    layout = make_run(s3_env, etl, target="expensive")
    result = run_etl(layout)
    assert result.returncode == 0, result.stdout + result.stderr
    table = read_table(layout)
    assert table.to_pylist() == [
        {"trip": 1, "city": "oslo", "km": 3.5, "pop": 0.7, "fare": 10, "rider": "ann",
         "expensive": True},
        {"trip": 2, "city": "lima", "km": 12.0, "pop": 10.0, "fare": 30, "rider": None,
         "expensive": False},
        {"trip": 3, "city": "oslo", "km": 7.0, "pop": 0.7, "fare": 15, "rider": "bob",
         "expensive": False},
    ]  # fmt: skip
    manifest, _ = load_manifest(layout, "etl")
    inputs = sorted(i.uri.removeprefix(f"{s3_env}/raw/") for i in manifest.inputs
                    if i.kind == "external")  # fmt: skip
    assert inputs == ["cities/part-0.parquet", "cities/part-1.parquet", "fares.csv.zip",
                      "riders.jsonl", "trips/2013-01.csv.gz", "trips/2013-02.csv.gz"]  # fmt: skip
    assert all(i.size and i.version for i in manifest.inputs if i.kind == "external")
    schema = json.loads(storage.read_bytes(output(layout, "schema.json")))
    assert schema["origin"]["pop"] == "cities" and schema["task"] == "binary"


def test_a_glob_matching_nothing_on_s3(s3_env: str):
    write_raw(s3_env, {"raw/a.csv": "x,y\n1,2\n"})
    layout = make_run(s3_env, {"sources": {"a": {"uri": "raw/2014/*.csv"}}}, target="y")
    result = run_etl(layout)
    assert result.returncode == 2
    assert error_line(result) == f"etl: source a: no file matches {s3_env}/raw/2014/*.csv"
    assert load_manifest(layout, "etl") is None
