"""Explore's column advice and single-column power: every check, on made-up columns whose
names say nothing (the checks must read the data and the spec, never a name)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from mlbatch.spec import ExploreSpec
from mlbatch_jobs.explore import advice, power

ROWS = 4000


def frame(seed: int = 0) -> pd.DataFrame:
    """One column per check, named c01..c14, and a binary target y derived from c02."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=ROWS)
    source = signal * 10 + rng.normal(size=ROWS)  # the target is computed from it
    codes = rng.integers(0, 300, ROWS) * 7  # integer codes: some make y likely, in no order
    likely = rng.random(2100) < 0.15
    y = (source > 5) | (likely[codes] & (rng.random(ROWS) < 0.8))
    missing = rng.normal(size=ROWS)
    missing[rng.random(ROWS) < 0.95] = np.nan
    return pd.DataFrame({
        "c01": np.arange(ROWS) * 7 + 3,  # a row counter, unique per row
        "c02": source,  # lineage: y = c02 > 5
        "c03": source + rng.normal(size=ROWS) * 2,  # a near copy of the target: power (flag)
        "c04": np.full(ROWS, 2013),  # constant
        "c05": np.where(rng.random(ROWS) < 0.998, "a", "b"),  # near constant (flag)
        "c06": missing,  # mostly missing
        "c07": [f"k{i:05d}" for i in rng.permutation(ROWS)],  # text unique per row
        "c08": codes,  # integer code of high cardinality
        "c09": [f"t{i}" for i in rng.integers(0, 200, ROWS)],  # text, high cardinality
        "c10": rng.normal(size=ROWS),  # known after prediction (declared)
        "c11": rng.normal(size=ROWS),  # declared identifier
        "c12": rng.normal(size=ROWS),  # an honest feature
        "c13": rng.choice(["x", "y", "z"], ROWS),  # an honest category
        "c14": rng.normal(size=ROWS),  # derived from c10 (lineage)
        "y": y,
    })  # fmt: skip


LINEAGE = {
    "y": {"expression": "c02 > 5", "derived_from": ["c02"]},
    "c14": {"expression": "c10 * 2", "derived_from": ["c10"]},
}


def advise(data: pd.DataFrame, **changes) -> dict:
    settings = ExploreSpec(high_cardinality=100, **changes)
    return advice.advise(
        pa.Table.from_pandas(data, preserve_index=False), data, target="y", task="binary",
        lineage=LINEAGE, known_after_prediction=["c10"], id_columns=["c11"], settings=settings,
    )  # fmt: skip


@pytest.fixture(scope="module")
def advised() -> dict:
    return advise(frame())


def checks(advised: dict, column: str) -> list[str]:
    return [reason["check"] for reason in advised["columns"][column]["reasons"]]


@pytest.mark.parametrize(
    "column, check",
    [
        ("c01", "unique_per_row"), ("c02", "target_lineage"), ("c04", "constant"),
        ("c06", "mostly_missing"), ("c07", "unique_per_row"), ("c10", "known_after_prediction"),
        ("c11", "declared_identifier"), ("c14", "known_after_prediction"),
    ],
)  # fmt: skip
def test_each_drop_check_finds_its_column(advised, column, check):
    assert advised["columns"][column]["action"] == "drop"
    assert check in checks(advised, column)
    assert column in advised["drop"]
    assert all(r["message"] for r in advised["columns"][column]["reasons"])


def test_lineage_source_is_also_a_power_leak(advised):
    assert checks(advised, "c02")[:2] == ["target_lineage", "single_column_power"]
    assert (
        "'y' is computed from it (y = c02 > 5)"
        in advised["columns"]["c02"]["reasons"][0]["message"]
    )
    assert "derived from ['c10']" in advised["columns"]["c14"]["reasons"][0]["message"]


def test_integer_code_and_high_cardinality_are_flagged_not_dropped(advised):
    code = advised["columns"]["c08"]
    assert code["action"] == "flag" and code["treat_as"] == "categorical"
    assert checks(advised, "c08") == ["integer_code", "high_cardinality"]
    assert checks(advised, "c09") == ["high_cardinality"]
    assert advised["flag"] == ["c03", "c05", "c08", "c09"]


def test_power_alone_flags_a_suspected_leak_and_keeps_it(advised):
    entry = advised["columns"]["c03"]
    assert entry["action"] == "flag" and checks(advised, "c03") == ["single_column_power"]
    assert entry["suspected_leak"] is True and entry["power"] > 0.85
    assert "a suspected leak, kept" in entry["reasons"][0]["message"]
    # c02 predicts as well, but it is dropped for its lineage: not a mere suspicion.
    assert advised["suspected_leaks"] == [
        {"column": "c03", "metric": "AUC", "power": entry["power"], "threshold": 0.85,
         "action": "flag"}
    ]  # fmt: skip
    assert "c03" not in advised["drop"]


def test_a_spec_can_opt_into_dropping_suspected_leaks():
    dropped = advise(frame(), drop_suspected_leaks=True)
    assert dropped["columns"]["c03"]["action"] == "drop" and "c03" in dropped["drop"]
    assert [leak["action"] for leak in dropped["suspected_leaks"]] == ["drop"]
    assert dropped["columns"]["c12"]["action"] == "keep"  # nothing else changes


def test_a_near_constant_column_is_flagged_not_dropped(advised):
    assert advised["columns"]["c05"]["action"] == "flag"
    assert checks(advised, "c05") == ["near_constant"]


def test_honest_columns_are_kept_with_their_power(advised):
    for column in ("c12", "c13"):
        entry = advised["columns"][column]
        assert entry == {"action": "keep", "reasons": [], "power": entry["power"]}
        assert 0.4 < entry["power"] < 0.6
    assert "y" not in advised["columns"]
    assert advised["power_metric"] == "roc_auc" and advised["thresholds"]["leak_auc"] == 0.85


def test_thresholds_come_from_the_spec():
    data = frame()
    relaxed = advise(data, leak_auc=0.999, mostly_missing=0.99, near_constant=0.9999)
    assert relaxed["columns"]["c03"]["action"] == "keep"
    assert "mostly_missing" not in checks(relaxed, "c06")
    assert relaxed["columns"]["c05"]["action"] == "keep"


def test_a_monotonic_counter_with_repeats_is_an_identifier():
    data = frame().assign(c12=np.arange(ROWS) * 2 // 3)  # rises, some values twice
    assert checks(advise(data), "c12") == ["monotonic"]


def test_a_rising_quantity_that_does_not_fill_its_range_is_kept():
    rng = np.random.default_rng(5)
    rising = np.cumsum(rng.integers(1, 500, ROWS))  # sorted amounts, whole units
    advised = advise(frame().assign(c12=rising))
    assert advised["columns"]["c12"]["action"] == "flag"
    assert checks(advised, "c12") == ["distinct_numbers"]


def test_shuffled_row_numbers_are_dropped_and_whole_amounts_are_kept():
    rng = np.random.default_rng(6)
    data = frame().assign(
        c12=rng.permutation(ROWS) + 1000,  # row numbers, shuffled: they fill their range
        c13=rng.choice(10**7, ROWS, replace=False),  # amounts in whole units, all distinct
    )
    advised = advise(data)
    assert advised["columns"]["c12"]["action"] == "drop"
    assert checks(advised, "c12") == ["unique_per_row"]
    assert advised["columns"]["c13"]["action"] == "flag"
    assert checks(advised, "c13") == ["distinct_numbers"]


def test_unique_integers_named_as_an_identifier_are_dropped():
    rng = np.random.default_rng(7)
    data = frame().rename(columns={"c12": "CustomerID", "c13": "paid"})
    data["CustomerID"] = rng.choice(10**7, ROWS, replace=False)
    data["paid"] = rng.choice(10**7, ROWS, replace=False)  # "id" inside a word is no id
    advised = advise(data)
    assert advised["columns"]["CustomerID"]["action"] == "drop"
    assert "its name says identifier" in advised["columns"]["CustomerID"]["reasons"][0]["message"]
    assert advised["columns"]["paid"]["action"] == "flag"
    assert [
        advice.named_as_identifier(n) for n in ("id", "user_id", "order-uuid", "CustomerID")
    ] == [True] * 4
    assert not any(advice.named_as_identifier(n) for n in ("paid", "idle", "valid", "Idx"))


def test_text_of_very_high_cardinality_is_an_identifier():
    data = frame().assign(c13=[f"v{i % (ROWS * 6 // 10)}" for i in range(ROWS)])
    assert checks(advise(data), "c13") == ["very_high_cardinality"]


def test_a_unique_float_measurement_is_not_an_identifier(advised):
    assert advised["columns"]["c12"]["action"] == "keep"  # every value distinct, yet a number


# single-column power ------------------------------------------------------------------


def test_roc_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(1)
    positive = rng.integers(0, 2, 500).astype(float)
    predicted = np.round(rng.random(500) + positive * 0.3, 1)
    assert power.roc_auc(positive, predicted) == pytest.approx(roc_auc_score(positive, predicted))


def test_a_column_unique_per_row_has_no_power_when_cross_fitted():
    data = frame()
    y = power.target_matrix(data["y"], "binary")
    folds = power.folds_of(ROWS, 0)
    unique = power.score(power.value_keys(data["c07"]), y, "binary", folds)
    assert unique == pytest.approx(0.5, abs=0.03)
    assert power.column_power(data["c03"], y, "binary", folds) > 0.85


def test_regression_power_is_r2_and_multiclass_is_macro_auc():
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    data = pd.DataFrame({"x": x, "noise": rng.normal(size=3000), "y": 3 * x})
    scores = power.power_scores(data, "y", "regression", seed=0)
    assert scores["x"] > 0.95 and abs(scores["noise"]) < 0.05
    assert scores["x"] <= r2_score(data["y"], data["y"])
    labels = pd.Series(np.digitize(x, [-0.5, 0.5])).map({0: "low", 1: "mid", 2: "high"})
    scores = power.power_scores(data.assign(y=labels), "y", "multiclass", seed=0)
    assert scores["x"] > 0.95 and scores["noise"] < 0.6


def test_single_class_target_has_no_power_scores():
    data = frame().assign(y=True)
    assert power.power_scores(data, "y", "binary", seed=0) == {}


def test_dates_and_missing_values_have_power_keys():
    when = pd.Series(pd.to_datetime(["2013-01-01", None, "2013-06-01", "2013-12-31"], utc=True))
    keys = power.ordered_keys(when)
    assert keys[1] == keys.max() and len(set(keys)) == 4
