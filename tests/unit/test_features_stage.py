"""The features stage as a process against a file:// run: what it commits, how it applies
explore's advice, and bad inputs (one line, exit 2, nothing committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features_fixture import commit_outputs

from mlbatch import preprocessing, runs, storage
from mlbatch.manifest import OutputFile, load_manifest
from mlbatch.runs import RunLayout, new_run_id, write_spec

pytestmark = pytest.mark.slow  # each test starts the stage program (a few seconds)
REPO = Path(__file__).resolve().parents[2]
ROWS = 1200


def etl_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=ROWS)
    return pd.DataFrame({
        "size": rng.lognormal(2, 1, ROWS), "color": rng.choice(["r", "g", "b"], ROWS),
        "day": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(ROWS), "h"),
        "shop": rng.integers(0, 40, ROWS), "noise": rng.normal(size=ROWS),
        "after": score + rng.normal(0, 0.1, ROWS), "leaky": score,
        "label": np.where(score + rng.normal(0, 1, ROWS) > 0.8, "yes", "no"),
    })  # fmt: skip


ADVICE = {
    "drop": ["leaky", "noise"],
    "flag": ["shop"],
    "columns": {
        "leaky": {"action": "drop", "reasons": [{"check": "single_column_power", "message": "x"}]},
        "noise": {"action": "drop", "reasons": [{"check": "near_constant", "message": "y"}]},
        "shop": {"action": "flag", "reasons": [{"check": "integer_code", "message": "z"}],
                 "treat_as": "categorical"},
    },
}  # fmt: skip


def committed_run(root: Path, data: pd.DataFrame, **features) -> RunLayout:
    """A run whose etl and explore stages committed (data, schema, advice)."""
    layout = RunLayout(storage.resolve_uri(str(root)), new_run_id())
    write_spec(layout, {
        "name": "unit", "target": "label", "task": "binary", "known_after_prediction": ["after"],
        "etl": {"sources": {"table": {"uri": "table.csv"}}}, "features": features,
    })  # fmt: skip
    schema = {"target": "label", "task": "binary", "rows": len(data), "lineage": {}}
    commit_files(layout, "etl", {"table.parquet": data, "schema.json": schema})
    commit_files(layout, "explore", {"advice.json": ADVICE})
    return layout


def commit_files(layout: RunLayout, stage: str, files: dict) -> None:
    folder = storage.local_path(layout.attempt_uri(stage, "1-aaaa"))
    folder.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, pd.DataFrame):
            content.to_parquet(folder / name, index=False)
        else:
            (folder / name).write_text(json.dumps(content))
    outputs = {
        name: OutputFile(size=(folder / name).stat().st_size,
                         sha256=storage.sha256_file(folder / name))
        for name in files
    }  # fmt: skip
    commit_outputs(layout, stage, "1-aaaa", outputs)


def run_features(layout: RunLayout) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.features", "--run", layout.uri, "--attempt", "1-bbbb"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_commits_the_contract_and_applies_the_advice(tmp_path):
    layout = committed_run(tmp_path, etl_table(), keep=["noise"],
                           split={"folds": 3}, crosses=[["color", "shop"]])  # fmt: skip
    result = run_features(layout)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, _ = load_manifest(layout, "features")
    assert [i.uri for i in manifest.inputs] == [
        layout.manifest_uri("etl"), layout.manifest_uri("explore")
    ]  # fmt: skip
    expected = {
        "feature_schema.json", "transformer.skops", "report.html", "split.parquet",
        "folds.json", *(f"{kind}/{name}.parquet" for kind in ("splits", "raw")
                        for name in ("train", "valid", "test")),
        *(f"folds/{i}/{name}.parquet" for i in range(3) for name in ("train", "valid")),
    }  # fmt: skip
    assert set(manifest.outputs) == expected
    folder = storage.local_path(layout.attempt_uri("features", "1-bbbb"))
    schema = json.loads((folder / "feature_schema.json").read_text())
    assert {"task", "target", "target_column", "row_id", "classes", "features", "excluded",
            "inputs"} <= set(schema)  # fmt: skip
    assert schema["classes"] == ["no", "yes"]
    assert "explore advice: single_column_power" in schema["excluded"]["leaky"]
    assert "known only after prediction" in schema["excluded"]["after"]
    assert "noise" not in schema["excluded"]  # kept by the spec despite the advice
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds["shop"] == "categorical"  # explore found it a code
    assert kinds["color_x_shop"] == "categorical" and "day_hour_sin" in kinds
    assert schema["treatments"]["shop"]["why"][0].startswith("a categorical: explore")

    train = pd.read_parquet(folder / "splits/train.parquet")
    assert list(train.columns) == ["__row_id", *kinds, "__target"]
    assert set(train.dtypes.astype(str)) <= {"float64", "int32", "int64"}
    raw = pd.read_parquet(folder / "raw/test.parquet")
    test = pd.read_parquet(folder / "splits/test.parquet")
    assert (raw["__row_id"] == test["__row_id"]).all() and "leaky" in raw  # raw: every column
    transformer = preprocessing.load_transformer(folder / "transformer.skops")
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    again = preprocessing.transform(transformer, raw, categorical)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), test[list(kinds)])

    split = pd.read_parquet(folder / "split.parquet")
    assert len(split) == ROWS and set(split["split"]) == {"train", "valid", "test"}
    recorded = manifest.metrics["split"]
    assert recorded["strategy"] == "random" and recorded["seed"] == 42
    assert set(recorded["row_ids_sha256"]) == {"train", "valid", "test"}
    folds = json.loads((folder / "folds.json").read_text())
    assert folds["k"] == 3 and folds["folds"][2]["valid_rows"] == manifest.metrics["valid_rows"]
    assert (split["fold"] >= 0).sum() == ROWS - manifest.metrics["test_rows"]


@pytest.mark.parametrize(
    "change, features, message",
    [
        ({"label": "yes"}, {}, "target 'label' has a single class ('yes')"),
        ({}, {"split": {"strategy": "time", "time_column": "when"}},
         "features.split.time_column: column 'when' is not in etl's table"),
        ({}, {"crosses": [["color", "hue"]]},
         "features.crosses[0]: column 'hue' is not in etl's table"),
        ({}, {"crosses": [["color", "after"]]}, "column 'after' is excluded"),
        ({}, {"keep": ["after"]}, "features.keep: 'after' cannot be kept"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_nothing_committed(tmp_path, change, features, message):
    layout = committed_run(tmp_path, etl_table().assign(**change), **features)
    result = run_features(layout)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr  # the stage tees both into its log
    errors = [line for line in output.splitlines() if line.startswith("features: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert message in errors[0]
    assert load_manifest(layout, "features") is None


def test_split_fractions_that_do_not_add_up_stop_the_run_before_any_stage(tmp_path):
    """The spec is checked when the run is asked for: nothing is created, nothing commits."""
    store = storage.resolve_uri(str(tmp_path / "store"))
    result = subprocess.run(
        [sys.executable, "-m", "mlbatch.controller.cli", "run", str(REPO / "examples/flights.yaml"),
         "--storage", store, "--set", "features.split.train=0.6"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "features.split" in errors[0] and "add up to 1" in errors[0]
    assert runs.list_run_ids(store) == []
