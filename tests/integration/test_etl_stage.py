"""The etl stage as a process (`python -m mlbatch_jobs.etl`), as every launcher runs it:
outputs and metrics on success; one line, exit 2 or 3 and no commit on bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbatch import runs, storage
from mlbatch.manifest import load_manifest
from mlbatch.spec import validate_spec

ATTEMPT = "1-aaaa"
FLIGHTS = "\n".join([
    "year,month,day,carrier,flight,origin,tailnum,dep_delay,arr_delay,time_hour",
    "2013,1,1,UA,1,JFK,N1,2,11,2013-01-01 05:00:00",
    "2013,1,1,AA,2,LGA,N2,-4,20,2013-01-01 05:00:00",
    "2013,1,2,UA,1,JFK,N1,40,55,2013-01-02 06:00:00",
    "2013,2,1,B6,3,JFK,N3,0,NA,2013-02-01 06:00:00",
    "2013,2,3,AA,2,LGA,,7,-3,2013-02-03 07:00:00",
]) + "\n"  # fmt: skip
WEATHER = "origin,time_hour,temp\nJFK,2013-01-01 05:00:00,30\nLGA,2013-01-01 05:00:00,31\n"
PLANES = "tailnum,year,seats\nN1,2001,150\nN2,2005,180\n"
AIRLINES = "carrier,name\nUA,United\nAA,American\nB6,JetBlue\n"
ZONE = {"type": "timestamp", "timezone": "America/New_York"}


def flights_etl(**changes) -> dict:
    """A small flights ETL: three joins, a filter, a derived target and validation rules."""
    etl = {
        "sources": {
            "flights": {"uri": "raw/flights.csv", "columns": {"time_hour": ZONE}},
            "weather": {"uri": "raw/weather.csv", "columns": {"time_hour": ZONE}},
            "planes": {"uri": "raw/planes.csv"},
            "airlines": {"uri": "raw/airlines.csv"},
        },
        "steps": [
            {"join": {"source": "weather", "on": ["origin", "time_hour"]}},
            {"join": {"source": "planes", "on": ["tailnum"]}},
            {"join": {"source": "airlines", "on": ["carrier"]}},
            {"filter": "arr_delay.notna()"},
            {"derive": {"delayed": "arr_delay > 15"}},
        ],
        "validation": [
            {"rule": "allowed", "column": "carrier", "source": "airlines"},
            {"rule": "range", "column": "dep_delay", "min": -60, "max": 1500},
            {"rule": "unique", "columns": ["year", "month", "day", "carrier", "flight"]},
            {"rule": "not_null", "columns": ["temp"], "severity": "warn"},
        ],
    }
    etl.update(changes)
    return etl


def write_raw(root: str, files: dict[str, str | bytes]) -> None:
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        storage.write_bytes(storage.join(root, path), data)


def flights_raw(root: str, **replace) -> None:
    files = {"raw/flights.csv": FLIGHTS, "raw/weather.csv": WEATHER, "raw/planes.csv": PLANES,
             "raw/airlines.csv": AIRLINES}  # fmt: skip
    write_raw(root, {**files, **replace})


def make_run(root: str, etl: dict, *, target: str = "delayed", **spec) -> runs.RunLayout:
    document = {"name": "etl-test", "target": target, "etl": etl, **spec}
    layout = runs.RunLayout(root, runs.new_run_id())
    runs.write_spec(layout, validate_spec(document).model_dump(mode="json"))
    return layout


def run_etl(layout: runs.RunLayout, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlbatch_jobs.etl", "--run", layout.uri, "--attempt", ATTEMPT]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip


def error_line(result: subprocess.CompletedProcess) -> str:
    """The stage's last line, its one-line reason (the log capture merges the streams)."""
    return (result.stdout + result.stderr).strip().splitlines()[-1]


def output(layout: runs.RunLayout, path: str) -> str:
    return storage.join(layout.attempt_uri("etl", ATTEMPT), path)


def read_table(layout: runs.RunLayout) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(output(layout, "table.parquet"))))


def test_the_flights_etl_commits_its_table_schema_and_report(file_storage: str):
    flights_raw(file_storage)
    etl = flights_etl(output={"partition_by": ["month"]})
    layout = make_run(file_storage, etl, known_after_prediction=["arr_delay"])
    result = run_etl(layout)
    assert result.returncode == 0, result.stderr
    manifest, _ = load_manifest(layout, "etl")
    assert {"table.parquet", "schema.json", "validation.json"} <= set(manifest.outputs)
    assert {p for p in manifest.outputs if p.startswith("dataset/")} == {
        "dataset/month=1/part-0.parquet", "dataset/month=2/part-0.parquet"
    }  # fmt: skip
    table = read_table(layout)
    assert table.num_rows == 4 and table["delayed"].to_pylist() == [False, True, True, False]
    assert table["temp"].to_pylist() == [30, 31, None, None]
    assert table["name"].to_pylist() == ["United", "American", "United", "American"]

    schema = json.loads(storage.read_bytes(output(layout, "schema.json")))
    assert schema["target"] == "delayed" and schema["task"] == "binary" and schema["rows"] == 4
    assert schema["lineage"] == {"delayed": {"expression": "arr_delay > 15",
                                             "derived_from": ["arr_delay"]}}  # fmt: skip
    assert schema["columns"]["time_hour"] == "datetime64[us, America/New_York]"
    assert schema["columns"]["seats"] == "float64"  # an int column with nulls, as pandas sees it
    assert schema["origin"]["seats"] == "planes" and schema["origin"]["delayed"] == "derived"
    assert schema["known_after_prediction"] == ["arr_delay"] and schema["id_columns"] == []

    metrics = manifest.metrics
    assert metrics["engine"] == "pandas" and metrics["rows"] == 4 and metrics["task"] == "binary"
    assert metrics["rows_in"] == {"flights": 5, "weather": 2, "planes": 2, "airlines": 3}
    join_weather = metrics["steps"][0]
    assert join_weather["step"] == "step 1 join weather" and join_weather["unmatched"] == 3
    assert metrics["validation"] == {"passed": 3, "warned": 1, "failed": 0}
    assert "step 4 filter: 5 -> 4 rows" in result.stdout
    assert "validation warning: not_null(temp): 2 rows are null" in result.stdout
    report = json.loads(storage.read_bytes(output(layout, "validation.json")))
    assert report["passed"] is True and len(report["rules"]) == 4


@pytest.mark.parametrize("engine", ["pandas", "dask"])
def test_a_scoring_etl_needs_no_target_and_keeps_every_row(file_storage: str, engine: str):
    """New rows to score have no label, nor what is known only after prediction time."""
    unlabelled = "\n".join(line.rsplit(",", 2)[0] + "," + line.rsplit(",", 1)[1]
                           for line in FLIGHTS.strip().splitlines()) + "\n"  # fmt: skip
    flights_raw(file_storage, **{"raw/flights.csv": unlabelled})
    etl = flights_etl(steps=[{"join": {"source": "weather", "on": ["origin", "time_hour"]}}],
                      engine=engine, validation=[])  # fmt: skip
    layout = make_run(file_storage, etl, known_after_prediction=["arr_delay"],
                      id_columns=["flight"], predict={"model": "flights:1"})  # fmt: skip
    result = run_etl(layout)
    assert result.returncode == 0, result.stdout + result.stderr
    table = read_table(layout)
    assert "arr_delay" not in table.column_names and table.num_rows == 5
    manifest = load_manifest(layout, "etl")[0]
    assert manifest.metrics["rows_missing_target"] == 0 and manifest.metrics["task"] is None
    assert "keep every row (scoring): 5 -> 5 rows" in result.stdout


BAD_INPUTS = {
    "malformed CSV line": (
        {"raw/flights.csv": FLIGHTS.replace("2013,2,1,B6,3,JFK,N3,0,NA,", "2013,2,1,B6,JFK,")},
        {}, "raw/flights.csv: malformed CSV, line 5: expected 10 columns, got 6",
    ),
    "missing join key column": (
        {"raw/planes.csv": PLANES.replace("tailnum", "tail")}, {},
        "step 2 join planes: source planes has no column 'tailnum'",
    ),
    "empty file": ({"raw/weather.csv": b""}, {}, "raw/weather.csv is empty"),
    "glob matching nothing": (
        {}, {"uri": "raw/2014/*.csv"}, "source flights: no file matches",
    ),
    "wrong declared type": (
        {}, {"columns": {"dep_delay": "date"}},
        "raw/flights.csv: column 'dep_delay': 5 values do not parse as date, e.g. '2', '-4'",
    ),
    "gzip that holds no CSV": (
        {"raw/flights.csv.gz": gzip.compress(b"")}, {"uri": "raw/flights.csv.gz"},
        "raw/flights.csv.gz: the file is empty",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_commit(file_storage: str, case: str):
    files, flights_source, message = BAD_INPUTS[case]
    flights_raw(file_storage, **files)
    etl = flights_etl()
    etl["sources"]["flights"].update(flights_source)
    layout = make_run(file_storage, etl)
    result = run_etl(layout)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert line.startswith("etl: ") and message in line, line
    assert load_manifest(layout, "etl") is None


def test_failed_validation_exits_3_with_a_report_and_no_commit(file_storage: str):
    flights_raw(file_storage)
    etl = flights_etl()
    etl["validation"][1]["max"] = 30  # dep_delay 40 is out of range
    layout = make_run(file_storage, etl)
    result = run_etl(layout)
    assert result.returncode == 3, result.stderr
    assert error_line(result) == (
        "etl: validation failed: range(dep_delay): 1 rows outside [-60.0, 30.0], e.g. 40; "
        "see validation.json"
    )
    assert load_manifest(layout, "etl") is None
    report = json.loads(storage.read_bytes(output(layout, "validation.json")))
    failed = [r for r in report["rules"] if r["status"] == "failed"]
    assert failed == [{"rule": "range", "columns": ["dep_delay"], "severity": "error",
                       "status": "failed", "violations": 1,
                       "detail": "outside [-60.0, 30.0]", "examples": [40]}]  # fmt: skip
    assert not storage.exists(output(layout, "table.parquet"))


def test_a_missing_required_column_fails_before_reading_the_data(file_storage: str):
    flights_raw(file_storage)
    etl = flights_etl(validation=[{"rule": "required", "columns": ["gate"]}])
    result = run_etl(make_run(file_storage, etl))
    assert result.returncode == 3
    assert "required(gate): no column 'gate' in the table" in error_line(result)
    assert "engine" not in result.stdout  # stopped at the plan
