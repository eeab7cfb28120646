"""Explore's advice as features applies it, on tables whose answer is known: a strong
legitimate predictor is kept and used, a leaked noisy copy of the target is flagged (and
dropped only when the spec opts in), an integer row id is dropped while a continuous
measurement unique per row is kept, and the target-based checks see training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlbatch.spec import PipelineSpec
from mlbatch.splitting import encode_target, split_rows
from mlbatch_jobs.explore import advice as column_advice
from mlbatch_jobs.explore.training import training_rows
from mlbatch_jobs.features import columns
from mlbatch_jobs.features.prepare import fit_prepare
from mlbatch_jobs.features.treatment import choose

ROWS = 3000


def table(seed: int = 0) -> pd.DataFrame:
    """Regression: y is mostly `strong` (R² about 0.9 alone); `copy` is y plus noise (what a
    leak looks like); `row` numbers the rows in shuffled order; `reading` is a continuous
        measurement distinct in every row; `amount` is whole units, distinct in most rows, and
    spread like a quantity; `weak` is honest and weak."""
    rng = np.random.default_rng(seed)
    strong = rng.normal(size=ROWS)
    weak = rng.normal(size=ROWS)
    y = 10 * strong + 2 * weak + rng.normal(0, 2.5, ROWS)
    return pd.DataFrame({
        "row": rng.permutation(ROWS) + 1,
        "strong": strong,
        "copy": y + rng.normal(0, 1.0, ROWS),
        "reading": rng.gamma(3.0, 2.0, ROWS) + weak,
        "amount": np.round(rng.lognormal(10, 1, ROWS) + 100 * weak),
        "weak": weak,
        "y": y,
    })  # fmt: skip


def spec_of(**explore) -> PipelineSpec:
    return PipelineSpec.model_validate({
        "name": "unit", "target": "y", "task": "regression",
        "etl": {"sources": {"table": {"uri": "table.csv"}}}, "explore": explore,
    })  # fmt: skip


def advise(data: pd.DataFrame, spec: PipelineSpec) -> dict:
    arrow = pa.Table.from_pandas(data, preserve_index=False)
    train = arrow.take(pa.array(training_rows(arrow, spec, target="y", task="regression")))
    return column_advice.advise(
        arrow, train.to_pandas(), target="y", task="regression", lineage={},
        known_after_prediction=[], id_columns=[], settings=spec.explore,
        training_rows=train.num_rows,
    )  # fmt: skip


def prepared_features(data: pd.DataFrame, spec: PipelineSpec, advice: dict) -> list[str]:
    """The raw columns behind the features the features stage would prepare."""
    excluded = columns.exclusions(data, {"lineage": {}}, spec, advice)
    candidates = [c for c in data.columns if c not in excluded]
    kinds, _ = columns.kinds(data, candidates, spec, advice)
    labels, _ = encode_target(data["y"], "regression")
    split = split_rows(data, labels, "regression", spec.features.split)
    plan, _ = choose(data.iloc[split.rows["train"]], kinds, spec.features, task="regression",
                     seed=0)  # fmt: skip
    prepared = fit_prepare(plan, data, labels, split.rows)
    return sorted({source for f in prepared.features for source in f["sources"]})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return table()


def test_a_strong_predictor_and_a_suspected_leak_are_kept_flagged_and_used(data):
    spec = spec_of()
    advice = advise(data, spec)
    strong, copy = advice["columns"]["strong"], advice["columns"]["copy"]
    assert strong["power"] > 0.8 and copy["power"] > 0.8  # both above leak_r2
    assert strong["action"] == copy["action"] == "flag"
    assert {leak["column"] for leak in advice["suspected_leaks"]} == {"strong", "copy"}
    assert all(leak["metric"] == "R²" and leak["action"] == "flag"
               for leak in advice["suspected_leaks"])  # fmt: skip
    used = prepared_features(data, spec, advice)
    assert "strong" in used and "copy" in used


def test_the_spec_can_opt_into_dropping_suspected_leaks(data):
    spec = spec_of(drop_suspected_leaks=True)
    advice = advise(data, spec)
    assert {"strong", "copy"} <= set(advice["drop"])
    used = prepared_features(data, spec, advice)
    assert "strong" not in used and "copy" not in used and "weak" in used


def test_integer_row_ids_are_dropped_and_a_unique_measurement_is_kept(data):
    spec = spec_of()
    advice = advise(data, spec)
    assert advice["columns"]["row"]["action"] == "drop"
    assert [r["check"] for r in advice["columns"]["row"]["reasons"]] == ["unique_per_row"]
    assert advice["columns"]["reading"]["action"] == "keep"
    assert data["amount"].nunique() > 0.95 * ROWS and (data["amount"] % 1 == 0).all()
    assert advice["columns"]["amount"]["action"] == "flag"  # distinct_numbers: kept
    used = prepared_features(data, spec, advice)
    assert "row" not in used and "reading" in used and "amount" in used


def test_explore_scores_the_training_rows_features_will_train_on(data):
    spec = spec_of()
    arrow = pa.Table.from_pandas(data, preserve_index=False)
    labels, _ = encode_target(data["y"], "regression")
    expected = split_rows(data, labels, "regression", spec.features.split).rows["train"]
    np.testing.assert_array_equal(training_rows(arrow, spec, target="y", task="regression"),
                                  expected)  # fmt: skip
    # A column that gives the target away on valid and test rows only is no leak to explore:
    # it never sees those rows.
    outside = np.setdiff1d(np.arange(ROWS), expected)
    tell = np.random.default_rng(3).normal(size=ROWS)
    tell[outside] = data["y"].to_numpy()[outside]
    advice = advise(data.assign(tell=tell), spec)
    assert advice["columns"]["tell"]["action"] == "keep"
    assert advice["training_rows"] == len(expected) < ROWS
