"""The inputs people have: `mlbatch run --data` on a European CSV (semicolons, decimal
commas, cp1252), an Excel workbook and JSON Lines gives the plain CSV's etl table byte for
byte, so every later stage comes from the plain run's cache; an etl spec whose sources
declare their dialect and sheet; a file whose dialect cannot be told stops the run with
one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_checks import mlbatch, run_json
from small_tables import QUICK
from test_etl_stage import (
    AIRLINES,
    FLIGHTS,
    PLANES,
    WEATHER,
    flights_etl,
    flights_raw,
    make_run,
    read_table,
    run_etl,
    write_raw,
)

from mlbatch import runs
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout

pytestmark = pytest.mark.slow


def accounts(rows: int = 300, seed: int = 11) -> pd.DataFrame:
    """Non-ASCII categories, decimals, whole numbers with gaps and a learnable target."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["básico", "pro", "équipe"], size=rows)
    usage = rng.gamma(2.0, 10.0, size=rows).round(2)
    seats = pd.array(rng.integers(1, 50, size=rows), dtype="Int64")
    seats[rng.random(rows) < 0.1] = pd.NA
    churned = ((usage < 15) & (plan != "équipe")).astype(int)
    return pd.DataFrame({"plan": plan, "usage": usage, "seats": seats, "churned": churned})


WRITERS = {
    "accounts-eu.csv": lambda frame, path: frame.to_csv(
        path, sep=";", decimal=",", index=False, encoding="cp1252"
    ),
    "accounts.xlsx": lambda frame, path: frame.to_excel(path, index=False),
    "accounts.jsonl": lambda frame, path: path.write_text(
        "".join(json.dumps({k: None if pd.isna(v) else v for k, v in row.items()}) + "\n"
                for row in frame.astype(object).to_dict("records"))
    ),
}  # fmt: skip


def run_data(path: Path, storage_uri: str) -> dict:
    """A quick run; without registering, so that evaluate too can come from the cache."""
    result = mlbatch(
        "run", "--data", str(path), "--target", "churned", "--storage", storage_uri,
        "--output", "json", "--set", "evaluate.registry.enabled=false", *QUICK,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return run_json(result)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> tuple[Path, str, dict]:
    """The plain CSV's run: (folder of the inputs, storage, its summary)."""
    root = tmp_path_factory.mktemp("inputs")
    storage_uri = f"file://{root}/store"
    accounts().to_csv(root / "accounts.csv", index=False)
    return root, storage_uri, run_data(root / "accounts.csv", storage_uri)


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_gives_the_plain_csvs_model_input(plain_run, name: str):
    root, storage_uri, plain_summary = plain_run
    plain_id = plain_summary["run_id"]
    WRITERS[name](accounts(), root / name)
    summary = run_data(root / name, storage_uri)
    plain, other = RunLayout(storage_uri, plain_id), RunLayout(storage_uri, summary["run_id"])
    plain_etl, other_etl = load_manifest(plain, "etl")[0], load_manifest(other, "etl")[0]
    assert other_etl.cached_from is None  # read from its own file
    for path in ("table.parquet", "schema.json"):
        assert other_etl.outputs[path].sha256 == plain_etl.outputs[path].sha256, path
    for stage in ("explore", "features", "train", "evaluate"):
        assert load_manifest(other, stage)[0].cached_from == plain_id, stage
    assert summary["metrics"] == plain_summary["metrics"]


def test_an_etl_spec_with_declared_dialects_and_a_sheet(file_storage: str):
    """Pipes and latin-1, a workbook's second sheet and JSON Lines: the plain CSVs' table."""
    flights_raw(file_storage)
    plain = make_run(file_storage, flights_etl())
    assert run_etl(plain).returncode == 0

    weather = pd.read_csv(pd.io.common.StringIO(WEATHER))
    workbook = Path(file_storage.removeprefix("file://")) / "raw/weather.xlsx"
    with pd.ExcelWriter(workbook) as writer:
        pd.DataFrame({"readme": ["hourly weather"]}).to_excel(writer, sheet_name="notes")
        weather.to_excel(writer, sheet_name="hourly", index=False)
    planes = pd.read_csv(pd.io.common.StringIO(PLANES))
    write_raw(file_storage, {
        "raw/flights.txt": FLIGHTS.replace(",", "|").replace("UA", "Ü").encode("latin-1"),
        "raw/planes.ndjson": planes.to_json(orient="records", lines=True),
        "raw/airlines.csv": AIRLINES.replace("UA,", "Ü,"),
    })  # fmt: skip
    etl = flights_etl()
    zone = etl["sources"]["flights"]["columns"]["time_hour"]
    etl["sources"] = {
        "flights": {"uri": "raw/flights.txt", "format": "csv", "delimiter": "|",
                    "encoding": "latin-1", "decimal": ".", "columns": {"time_hour": zone}},
        "weather": {"uri": "raw/weather.xlsx", "sheet": "hourly", "columns": {"time_hour": zone}},
        "planes": {"uri": "raw/planes.ndjson"},
        "airlines": {"uri": "raw/airlines.csv"},
    }  # fmt: skip
    declared = make_run(file_storage, etl)
    result = run_etl(declared)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "source flights: separator '|', decimal '.', iso8859-1" in result.stdout
    table, expected = read_table(declared), read_table(plain)
    assert table["carrier"].to_pylist() == ["Ü", "AA", "Ü", "AA"]
    assert table.drop_columns(["carrier"]).equals(expected.drop_columns(["carrier"]))


def test_a_file_whose_dialect_cannot_be_told_stops_with_one_line(tmp_path: Path, file_storage):
    data = tmp_path / "export.csv"
    data.write_text("plan;usage;churned\npro;1,5\nbásico;2,5;0;extra\n")
    result = mlbatch("run", "--data", str(data), "--target", "churned", "--storage", file_storage)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: file file://{data}: cannot tell how")
    assert (
        "tried ',': one column in the header, 2 on line 2; ';': 3 columns in the header, "
        "2 on line 2; tab: one column; '|': one column (read as utf-8)" in lines[0]
    )
    assert lines[0].endswith("set etl.sources.data.delimiter (or .encoding, .format)")
    assert runs.list_run_ids(file_storage) == []
