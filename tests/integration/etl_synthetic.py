"""Flights-like raw files and an etl spec over them (several formats, duplicates, values
that do not parse, joins and a dedupe shuffle) for the Dask engine tests."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlbatch import storage

KEYS = ["day", "carrier", "flight"]  # unique after the spec's dedupe


def synthetic(root: str, rows: int = 20_000, seed: int = 3) -> None:
    """Flights-like raw files in several formats, with duplicates and unparseable values."""
    rng = np.random.default_rng(seed)
    carriers = np.array(["UA", "AA", "B6", "DL", "ZZ"])
    hours = rng.integers(0, 200, rows)
    flights = pa.table({
        "day": rng.integers(1, 30, rows), "carrier": carriers[rng.integers(0, 5, rows)],
        "flight": rng.integers(1, 400, rows), "origin": np.array(["JFK", "LGA"])[hours % 2],
        "hour": hours, "tailnum": np.char.add("N", rng.integers(0, 300, rows).astype(str)),
        "delay": np.where(rng.random(rows) < 0.02, "n/a", rng.normal(10, 30, rows).round(1)),
    })  # fmt: skip
    flights = pa.concat_tables([flights, flights.slice(100, 500)])  # duplicated flights
    third = flights.num_rows // 3
    files = {}
    for i, start in enumerate(range(0, flights.num_rows, third)):
        text = _csv(flights.slice(start, third))
        files[f"raw/flights/part-{i}.csv" + (".gz" if i == 1 else "")] = (
            gzip.compress(text) if i == 1 else text
        )
    weather = pa.table({"origin": np.array(["JFK", "LGA"])[np.arange(400) % 2],
                        "hour": np.arange(400) // 2 * 2 + np.arange(400) % 2,
                        "temp": rng.normal(50, 10, 400)})  # fmt: skip
    sink = pa.BufferOutputStream()
    pq.write_table(weather, sink, row_group_size=50)
    files["raw/weather.parquet"] = sink.getvalue().to_pybytes()
    planes = [f'{{"tailnum": "N{i}", "seats": {100 + i}}}' for i in range(0, 300, 2)]
    files["raw/planes.jsonl"] = ("\n".join(planes) + "\n").encode()
    files["raw/airlines.csv"] = b"carrier,name\nUA,United\nAA,American\nB6,JetBlue\nDL,Delta\n"
    for path, data in files.items():
        storage.write_bytes(storage.join(root, path), data)


def _csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def synthetic_spec(**etl) -> dict:
    return {
        "name": "dask-test", "target": "late",
        "etl": {
            "sources": {
                "flights": {"uri": "raw/flights/part-*.csv*", "columns": {"delay": "float64"},
                            "on_error": "null"},
                "weather": {"uri": "raw/weather.parquet"},
                "planes": {"uri": "raw/planes.jsonl"},
                "airlines": {"uri": "raw/airlines.csv"},
            },
            "steps": [
                {"join": {"source": "weather", "on": ["origin", "hour"]}},
                {"join": {"source": "planes", "on": ["tailnum"], "how": "inner"}},
                {"join": {"source": "airlines", "on": ["carrier"]}},
                {"filter": "delay.notna() and hour < 190"},
                {"dedupe": {"on": KEYS, "keep": "last"}},
                {"derive": {"late": "delay > 15", "seat_band": "seats // 50"}},
                {"rename": {"name": "airline"}},
                {"drop": ["origin"]},
            ],
            "validation": [
                {"rule": "unique", "columns": KEYS},
                {"rule": "range", "column": "delay", "min": -50, "max": 60, "severity": "warn"},
                {"rule": "allowed", "column": "carrier", "source": "airlines",
                 "severity": "warn"},
                {"rule": "unique", "columns": ["carrier", "day"], "severity": "warn"},
            ],
            **etl,
        },
    }  # fmt: skip
