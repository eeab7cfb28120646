"""A deterministic flights-like dataset of any size, shaped like nycflights13 (flights,
weather, planes, airlines), written outside the repository for the ETL benchmark.

The same seed and size always give the same bytes; generation goes a million rows at a
time, so memory stays small whatever the size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

CHUNK_ROWS = 1_000_000
ORIGINS = np.array(["EWR", "JFK", "LGA"])
CARRIERS = np.array(["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA",
                     "US", "VX", "WN", "YV"])  # fmt: skip
HOURS = 365 * 24
TAILS = 4000  # flights use 4000 tail numbers, planes knows 3300 of them (as in the real data)
PLANES = 3300
DESTS = np.array([f"D{i:02d}" for i in range(100)])
START = np.datetime64("2013-01-01T05:00:00", "s")  # midnight in New York, in UTC


def default_root() -> Path:
    return Path(os.environ.get("MLBATCH_BENCH_DATA", "/tmp/mlbatch-bench"))


def generate(rows: int, *, root: Path | None = None, csv: bool = False, seed: int = 0) -> Path:
    """The dataset's folder (generated once, reused while its marker matches)."""
    folder = (root or default_root()) / f"flights-{rows}"
    marker = folder / "generated.json"
    wanted = {"rows": rows, "csv": csv, "seed": seed, "version": 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return folder
    (folder / "flights").mkdir(parents=True, exist_ok=True)
    csv_writer = None
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        chunk = flights_chunk(min(CHUNK_ROWS, rows - start), seed=seed * 1000 + index)
        pq.write_table(chunk, folder / "flights" / f"part-{index:05d}.parquet")
        if csv:
            if csv_writer is None:
                csv_writer = pa_csv.CSVWriter(folder / "flights.csv", chunk.schema)
            csv_writer.write_table(chunk)
    if csv_writer is not None:
        csv_writer.close()
    for name, table in (("weather", weather(seed)), ("planes", planes(seed)),
                        ("airlines", airlines())):  # fmt: skip
        pa_csv.write_csv(table, folder / f"{name}.csv")
    marker.write_text(json.dumps(wanted))
    return folder


def flights_chunk(rows: int, *, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    hour_of_year = rng.integers(0, HOURS, rows)
    time_hour = START + hour_of_year.astype("timedelta64[h]")
    local = time_hour - np.timedelta64(5, "h")
    days = local.astype("datetime64[D]")
    months = local.astype("datetime64[M]")
    sched_hour = (local - days).astype("timedelta64[h]").astype(np.int64)
    minute = rng.integers(0, 60, rows)
    dep_delay = np.round(rng.gamma(1.2, 14, rows) - 8)
    arr_delay = np.round(dep_delay + rng.normal(-5, 12, rows))
    cancelled = rng.random(rows) < 0.027
    air_time = rng.integers(20, 600, rows).astype(np.float64)
    return pa.table({
        "year": np.full(rows, 2013),
        "month": (months - months.astype("datetime64[Y]")).astype(np.int64) + 1,
        "day": (days - months).astype(np.int64) + 1,
        "dep_time": pa.array(sched_hour * 100 + minute + dep_delay, mask=cancelled),
        "sched_dep_time": sched_hour * 100 + minute,
        "dep_delay": pa.array(dep_delay, mask=cancelled),
        "arr_time": pa.array((sched_hour * 100 + minute + air_time) % 2400, mask=cancelled),
        "sched_arr_time": (sched_hour * 100 + minute + air_time.astype(np.int64)) % 2400,
        "arr_delay": pa.array(arr_delay, mask=cancelled | (rng.random(rows) < 0.003)),
        "carrier": CARRIERS[rng.integers(0, len(CARRIERS), rows)],
        "flight": rng.integers(1, 8000, rows),
        "tailnum": pa.array(np.char.add("N", rng.integers(0, TAILS, rows).astype(str)),
                            mask=rng.random(rows) < 0.007),
        "origin": ORIGINS[rng.integers(0, 3, rows)],
        "dest": DESTS[rng.integers(0, len(DESTS), rows)],
        "air_time": pa.array(air_time, mask=cancelled),
        "distance": rng.integers(80, 5000, rows),
        "hour": sched_hour,
        "minute": minute,
        "time_hour": pa.array(time_hour.astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
    })  # fmt: skip


def weather(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed + 10**6)
    rows = 3 * HOURS
    hours = np.tile(np.arange(HOURS), 3)
    time_hour = START + hours.astype("timedelta64[h]")
    local = time_hour - np.timedelta64(5, "h")
    days, months = local.astype("datetime64[D]"), local.astype("datetime64[M]")
    return pa.table({
        "origin": np.repeat(ORIGINS, HOURS),
        "year": np.full(rows, 2013),
        "month": (months - months.astype("datetime64[Y]")).astype(np.int64) + 1,
        "day": (days - months).astype(np.int64) + 1,
        "hour": (local - days).astype("timedelta64[h]").astype(np.int64),
        "temp": rng.normal(55, 18, rows).round(2),
        "dewp": rng.normal(40, 18, rows).round(2),
        "humid": rng.uniform(10, 100, rows).round(2),
        "wind_dir": rng.integers(0, 36, rows) * 10,
        "wind_speed": rng.gamma(2, 5, rows).round(3),
        "wind_gust": pa.array(rng.gamma(3, 7, rows).round(3), mask=rng.random(rows) < 0.8),
        "precip": np.where(rng.random(rows) < 0.9, 0, rng.exponential(0.05, rows)).round(2),
        "pressure": pa.array(rng.normal(1017, 7, rows).round(1), mask=rng.random(rows) < 0.1),
        "visib": np.minimum(10, rng.exponential(12, rows)).round(1),
        "time_hour": pa.array(time_hour.astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
    })  # fmt: skip


def planes(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed + 2 * 10**6)
    makers = np.array(["BOEING", "AIRBUS", "EMBRAER", "BOMBARDIER INC", "MCDONNELL DOUGLAS"])
    return pa.table({
        "tailnum": np.char.add("N", np.arange(PLANES).astype(str)),
        "year": pa.array(rng.integers(1960, 2014, PLANES), mask=rng.random(PLANES) < 0.02),
        "type": np.where(rng.random(PLANES) < 0.99, "Fixed wing multi engine",
                         "Fixed wing single engine"),
        "manufacturer": makers[rng.integers(0, len(makers), PLANES)],
        "model": np.char.add("M-", rng.integers(100, 999, PLANES).astype(str)),
        "engines": rng.integers(1, 4, PLANES),
        "seats": rng.integers(2, 450, PLANES),
        "speed": pa.array(rng.integers(90, 500, PLANES), mask=rng.random(PLANES) < 0.99),
        "engine": np.where(rng.random(PLANES) < 0.85, "Turbo-fan", "Turbo-jet"),
    })  # fmt: skip


def airlines() -> pa.Table:
    return pa.table({"carrier": CARRIERS, "name": np.char.add(CARRIERS, " Airlines Inc.")})
