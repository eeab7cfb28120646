"""Scoring raw rows (mlbatch.scoring) and the predict stage: model references, the exact
transformer and model, the output's columns and formats, and input schema errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from evaluate_fixture import (
    commit_files,
    evaluate_in_process,
    model_run,
    new_run,
    run_stage_process,
)
from features_fixture import commit_attempt, raw_table

from mlbatch import scoring, storage
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest

QUICK_EVALUATION = {"evaluate": {"bootstrap": 10, "permutation_repeats": 0}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A storage with a binary model registered as unit:1 (@production), and the run."""
    root = storage.resolve_uri(str(tmp_path_factory.mktemp("predict") / "store"))
    layout = model_run(root, "binary", seed=0, extra=QUICK_EVALUATION)
    evaluate_in_process(layout, attempt="1-eval")
    commit_attempt(layout, "evaluate", "1-eval")
    storage.write_bytes(storage.join(root, "run-id.txt"), layout.run_id.encode())
    return root


def scorer_for(root: str, reference: str, folder) -> scoring.Scorer:
    scoring.fetch_model(root, reference, folder)
    return scoring.load_scorer(folder)


def prepared_and_raw(root: str, run_id: str, split: str = "test"):
    attempt = storage.local_path(storage.join(root, "runs", run_id, "features/attempts/1-aaaa"))
    return (pd.read_parquet(attempt / f"splits/{split}.parquet"),
            pd.read_parquet(attempt / f"raw/{split}.parquet"))  # fmt: skip


def test_every_reference_form_scores_raw_rows_as_the_model_scored_prepared_ones(store, tmp_path):
    run_id = storage.read_bytes(storage.join(store, "run-id.txt")).decode()
    prepared, raw = prepared_and_raw(store, run_id)
    by_run = scorer_for(store, run_id, tmp_path / "run")
    expected = by_run.model.predict(prepared[by_run.model.info["features"]].to_numpy("float64"))
    for reference in (run_id, "unit:1", "unit@production"):
        scorer = scorer_for(store, reference, tmp_path / reference.replace("@", "-"))
        np.testing.assert_allclose(scorer.predict(raw), expected, rtol=1e-9)
    assert by_run.threshold == scorer.threshold != 0.5  # evaluate's F1 threshold, both ways


def test_binary_output_names_the_positive_class_and_keeps_columns(store, tmp_path):
    scorer = scorer_for(store, "unit@production", tmp_path / "m")
    rows = raw_table("binary", 50, seed=9).drop(columns=["y"])
    rows.insert(0, "flight_id", np.arange(50))
    frame = scorer.prediction_frame(rows, keep=["flight_id"])
    assert list(frame.columns) == ["flight_id", "prediction", "probability"]
    assert frame["prediction"].dtype == bool
    assert frame["prediction"].tolist() == (frame["probability"] >= scorer.threshold).tolist()
    assert scorer.describe() == {
        "task": "binary", "target": "y", "positive_class": True, "threshold": scorer.threshold,
        "classes": [False, True],
    }  # fmt: skip


def test_missing_columns_are_named_extra_ones_ignored_unseen_categories_scored(store, tmp_path):
    scorer = scorer_for(store, "unit:1", tmp_path / "m")
    rows = raw_table("binary", 20, seed=3)
    with pytest.raises(BadInput, match="lack 2 column.*: hour, carrier"):
        scorer.prediction_frame(rows.drop(columns=["hour", "carrier"]), keep=[])
    with pytest.raises(BadInput, match="columns to keep are not in the rows: id"):
        scorer.prediction_frame(rows, keep=["id"])
    odd = rows.assign(extra="ignored", carrier=["ZZ"] * 10 + ["AA"] * 10)  # ZZ: never seen
    frame = scorer.prediction_frame(odd, keep=[])
    assert len(frame) == 20 and frame["probability"].between(0, 1).all()


@pytest.mark.parametrize(("task", "family"), [("multiclass", "xgboost"), ("regression", "linear")])
def test_multiclass_and_regression_columns(tmp_path, task, family):
    root = storage.resolve_uri(str(tmp_path / "store"))
    layout = model_run(root, task, family=family)
    scorer = scorer_for(root, layout.run_id, tmp_path / "m")
    prepared, raw = prepared_and_raw(root, layout.run_id)
    frame = scorer.prediction_frame(raw, keep=["__row_id"])
    if task == "regression":
        assert list(frame.columns) == ["__row_id", "prediction"]
        assert np.corrcoef(frame["prediction"], raw["y"])[0, 1] > 0.8
        return
    assert list(frame.columns) == ["__row_id", "prediction", "probability_high",
                                   "probability_low", "probability_mid"]  # fmt: skip
    probabilities = frame.filter(like="probability_").to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
    assert (frame["prediction"] == raw["y"]).mean() > 0.6


def test_rows_read_and_written_as_parquet_or_csv(tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "prediction": [True, False], "probability": [0.9, 0.2]})
    parquet = storage.resolve_uri(str(tmp_path / "out/p.parquet"))
    scoring.write_rows(frame, parquet, metadata={"positive_class": True})
    assert json.loads(pq.read_schema(tmp_path / "out/p.parquet").metadata[b"mlbatch"]) == {
        "positive_class": True
    }
    csv = storage.resolve_uri(str(tmp_path / "out/p.csv"))
    scoring.write_rows(frame, csv, metadata={})
    for uri in (parquet, csv):
        pd.testing.assert_frame_equal(scoring.read_rows(uri), frame)
    with pytest.raises(BadInput, match=r"\.parquet or \.csv"):
        scoring.write_rows(frame, storage.resolve_uri(str(tmp_path / "p.json")), metadata={})
    with pytest.raises(BadInput, match="input not found"):
        scoring.read_rows(storage.resolve_uri(str(tmp_path / "missing.csv")))


def test_references_that_name_nothing_are_bad_input(store, tmp_path):
    for reference, message in [
        ("unit:7", "model unit has no version 7"),
        ("unit@staging", "model unit has no alias 'staging'"),
        ("20200101-000000-abcdef", "has no committed features stage"),
        ("Unit", "is not NAME@ALIAS, NAME:VERSION or a run id"),
    ]:
        with pytest.raises(BadInput, match=message):
            scoring.fetch_model(store, reference, tmp_path / "m")


def scoring_run(root: str, rows: pd.DataFrame, predict: dict):
    """A scoring pipeline's run (etl -> predict) whose etl committed these rows."""
    layout = new_run(root, extra={"id_columns": ["flight_id"], "predict": predict})
    path = storage.local_path(root) / "table.parquet"
    rows.to_parquet(path, index=False)
    commit_files(layout, "etl", "1-etl0", {"table.parquet": path.read_bytes()})
    return layout


@pytest.mark.slow
def test_predict_stage_writes_predictions_with_the_key_columns(store):
    rows = raw_table("binary", 40, seed=5).drop(columns=["y"]).assign(note="not a feature")
    rows.insert(0, "flight_id", np.arange(100, 140))
    layout = scoring_run(store, rows, {"model": "unit@production", "output": "out/scored.csv"})
    done = run_stage_process("predict", layout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "predict")
    assert set(manifest.outputs) == {"predictions.csv", "predictions.json"}
    assert manifest.metrics["rows"] == 40
    assert manifest.metrics["model"]["version"] == 1
    externals = [i.uri for i in manifest.inputs if i.kind == "external"]
    assert externals == [storage.join(store, "models/unit/versions/1/version.json")]
    attempt = storage.local_path(layout.attempt_uri("predict", "1-abcd"))
    written = pd.read_csv(attempt / "predictions.csv")
    assert list(written.columns) == ["flight_id", "prediction", "probability"]
    assert written["flight_id"].tolist() == list(range(100, 140))
    metadata = json.loads((attempt / "predictions.json").read_text())
    assert metadata["positive_class"] is True and metadata["published"].endswith("out/scored.csv")
    published = pd.read_csv(storage.local_path(store) / "out/scored.csv")
    pd.testing.assert_frame_equal(published, written)


@pytest.mark.slow
def test_predict_stage_names_the_missing_columns_and_exits_2(store):
    rows = raw_table("binary", 10, seed=6).drop(columns=["y", "temp"])
    rows.insert(0, "flight_id", np.arange(10))
    layout = scoring_run(store, rows, {"model": "unit:1"})
    done = run_stage_process("predict", layout)
    assert done.returncode == 2
    assert "lack 1 column(s) the model needs: temp" in done.stdout + done.stderr
    assert load_manifest(layout, "predict") is None
