"""Features that mean the same at train and predict time: category keys that do not depend
on the dtype pandas guessed, Arrow dates as dates, the time zone fitted with the
transformer, and a batch's unreadable numbers and unseen categories counted and reported
(or refused) at predict time."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlbatch import preprocessing
from mlbatch.errors import BadInput
from mlbatch.input_checks import check_inputs, review_inputs
from mlbatch.input_values import category_keys, in_zone
from mlbatch.notes import input_note, leak_note, run_notes
from mlbatch.spec import FeaturesSpec
from mlbatch.spec.predict import PredictSpec
from mlbatch_jobs.features.columns import kind_of
from mlbatch_jobs.features.prepare import fit_prepare
from mlbatch_jobs.features.treatment import choose

ROWS = 1200


def fitted(table: pd.DataFrame, kinds: dict, labels: np.ndarray, **features):
    """The transformer fitted on the first 1000 rows, and its prepared training frame."""
    plan, _ = choose(table.iloc[:1000], kinds, FeaturesSpec(**features), task="binary", seed=0)
    rows = {"train": np.arange(1000), "valid": np.arange(1000, ROWS)}
    prepared = fit_prepare(plan, table, labels, rows)
    return prepared.transformer, prepared


def features_of(transformer, rows: pd.DataFrame, prepared) -> pd.DataFrame:
    categorical = [f["name"] for f in prepared.features if f["kind"] == "categorical"]
    return preprocessing.transform(transformer, rows, categorical)


# category keys ---------------------------------------------------------------------------


def coded_table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """An integer code with nulls (so pandas makes it float64: 3.0) that decides the target."""
    rng = np.random.default_rng(seed)
    code = rng.integers(1, 6, ROWS).astype("float64")
    code[rng.random(ROWS) < 0.1] = np.nan
    labels = (np.isin(code, [2, 4]) ^ (rng.random(ROWS) < 0.1)).astype("int64")
    return pd.DataFrame({"code": code, "x": rng.normal(size=ROWS)}), labels


def test_category_keys_name_whole_numbers_alike_whatever_their_dtype():
    variants = [
        pd.Series([3.0, np.nan, 12.0, 2.5]), pd.Series([3, None, 12, 2.5], dtype=object),
        pd.Series([np.float32(3), None, np.int64(12), 2.5], dtype=object),
    ]  # fmt: skip
    for values in variants:
        keys = category_keys(values)
        assert keys[0] == "3" and keys[2] == "12" and keys[3] == "2.5" and pd.isna(keys[1])
    assert category_keys(pd.Series([3, 12], dtype="Int64")).tolist() == ["3", "12"]
    assert category_keys(pd.Series(["3.0", "a"])).tolist() == ["3.0", "a"]  # text stays text
    assert category_keys(pd.Series([True, False])).tolist() == ["True", "False"]


def test_a_code_with_nulls_in_training_scores_identically_without_nulls_at_predict_time():
    table, labels = coded_table()
    transformer, prepared = fitted(table, {"code": "categorical", "x": "numeric"}, labels,
                                   rare_min_count=1)  # fmt: skip
    names = [f["name"] for f in prepared.features]
    model = LogisticRegression().fit(prepared.frames["train"][names], labels[:1000])
    later = table.iloc[1000:].dropna(subset=["code"])
    as_ints = later.assign(code=later["code"].astype("int64"))  # no nulls: pandas says int64
    assert as_ints["code"].dtype == "int64" and later["code"].dtype == "float64"
    from_floats = features_of(transformer, later, prepared)
    from_ints = features_of(transformer, as_ints, prepared)
    pd.testing.assert_frame_equal(from_floats, from_ints)
    assert (from_ints["code"] >= 0).all()  # every code known, none scored as unseen
    np.testing.assert_array_equal(model.predict_proba(from_floats[names]),
                                  model.predict_proba(from_ints[names]))  # fmt: skip
    assert check_inputs(transformer, as_ints)["unseen"]["code"]["count"] == 0


def test_a_transformer_fitted_before_canonical_keys_keeps_its_own_keys():
    table, labels = coded_table()
    transformer, prepared = fitted(table, {"code": "categorical", "x": "numeric"}, labels)
    inputs = transformer.named_steps["inputs"]
    del inputs.canonical_keys_  # as loaded from an older transformer file
    assert inputs.transform(table.iloc[:3])["code"].dropna().str.endswith(".0").all()


# dates and time zones ----------------------------------------------------------------------


def test_arrow_date_columns_are_dates_with_date_parts(tmp_path):
    rng = np.random.default_rng(1)
    days = [datetime.date(2013, 1, 1) + datetime.timedelta(days=int(d))
            for d in rng.integers(0, 365, ROWS)]  # fmt: skip
    arrow = pa.table({"day": pa.array(days, pa.date32()), "x": rng.normal(size=ROWS)})
    pq.write_table(arrow, tmp_path / "t.parquet")
    table = pq.read_table(tmp_path / "t.parquet").to_pandas()  # as features reads etl's table
    assert table["day"].dtype == object and kind_of(table["day"]) == "date"
    labels = (table["x"] > 0).astype("int64").to_numpy()
    transformer, prepared = fitted(table, {"day": "date", "x": "numeric"}, labels)
    names = [f["name"] for f in prepared.features]
    assert {"day_month", "day_day", "day_dayofweek", "day_elapsed_days"} <= set(names)
    assert "day_hour" not in names  # calendar dates: no hour varies
    later = pd.read_parquet(tmp_path / "t.parquet").iloc[1000:]  # as predict reads rows
    again = features_of(transformer, later, prepared)
    expected = pd.Series([d.month for d in days[1000:]], index=again.index, dtype="float64")
    pd.testing.assert_series_equal(again["day_month"], expected, check_names=False)


def test_the_time_zone_is_part_of_the_fitted_transformer():
    rng = np.random.default_rng(2)
    local = pd.Timestamp("2013-03-01", tz="America/New_York") + pd.to_timedelta(
        rng.integers(0, 24 * 200, ROWS), "h"
    )
    table = pd.DataFrame({"when": local, "x": rng.normal(size=ROWS)})
    labels = (local.hour > 12).astype("int64")
    transformer, prepared = fitted(table, {"when": "date", "x": "numeric"}, np.asarray(labels))
    assert transformer.named_steps["inputs"].timezones_ == {"when": "America/New_York"}
    later = table.iloc[1000:]
    expected = features_of(transformer, later, prepared)
    in_utc = later.assign(when=later["when"].dt.tz_convert("UTC"))
    as_text = later.assign(when=later["when"].map(lambda t: t.isoformat()))
    naive = later.assign(when=later["when"].dt.tz_localize(None))  # wall-clock, no zone
    for rows in (in_utc, as_text, naive):
        pd.testing.assert_frame_equal(features_of(transformer, rows, prepared), expected)
    assert (expected["when_hour"] == later["when"].dt.hour).all()  # local hours


def test_zone_rules_for_naive_and_aware_mismatches():
    aware = pd.Series(pd.to_datetime(["2013-06-01 12:00"]).tz_localize("UTC"))
    assert in_zone(aware, None).iloc[0] == pd.Timestamp("2013-06-01 12:00")
    naive = pd.Series(pd.to_datetime(["2013-06-01 12:00"]))
    assert str(in_zone(naive, "Europe/Paris").iloc[0]) == "2013-06-01 12:00:00+02:00"
    skipped = pd.Series(pd.to_datetime(["2013-03-31 02:30"]))  # no such time in Paris
    assert in_zone(skipped, "Europe/Paris").isna().all()


# predict-time checks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(4)
    table = pd.DataFrame({
        "size": rng.normal(10, 2, ROWS), "color": rng.choice(["r", "g", "b"], ROWS),
    })  # fmt: skip
    labels = (table["size"] > 10).astype("int64").to_numpy()
    return fitted(table, {"size": "numeric", "color": "categorical"}, labels), table


def test_unparseable_numbers_and_unseen_categories_are_counted(scored):
    (transformer, _), table = scored
    batch = table.iloc[:10].astype({"size": object}).copy()
    batch.loc[batch.index[:3], "size"] = ["n/a", "12,5", "oops"]
    batch.loc[batch.index[:2], "color"] = "purple"
    quality = check_inputs(transformer, batch)
    assert quality["unparseable"] == {"size": {"count": 3, "examples": ["n/a", "12,5", "oops"]}}
    assert quality["unseen"]["color"] == {"count": 2, "share": 0.2, "examples": ["purple"]}
    note = input_note(quality)
    assert note.startswith("predict: 3 values in 1 column could not be read as numbers")
    assert "size (3)" in note and "color (20.0% of rows)" in note
    assert check_inputs(transformer, table.iloc[:10]) == {
        "rows": 10, "unparseable": {}, "unseen": {"color": {"count": 0, "share": 0.0,
                                                            "examples": []}},
    }  # fmt: skip


def test_a_transformer_saved_before_the_vocabulary_step_counts_unseen_categories_too():
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"size": rng.normal(10, 2, ROWS), "color": rng.choice(["r", "g"], ROWS)})
    labels = (table["size"] > 10).astype("int64").to_numpy()
    plan, _ = choose(table.iloc[:1000], {"size": "numeric", "color": "categorical"},
                     FeaturesSpec(), task="binary", seed=0)  # fmt: skip
    steps = preprocessing.build_transformer(plan).steps
    older = Pipeline([s for s in steps if s[0] != "vocabulary"]).fit(table, labels)
    batch = table.iloc[:4].copy()
    batch.loc[batch.index[:1], "color"] = "purple"
    assert check_inputs(older, batch)["unseen"]["color"]["examples"] == ["purple"]


def test_unparseable_numbers_warn_by_default_and_fail_on_request(scored, capsys):
    (transformer, _), table = scored
    batch = table.iloc[:10].astype({"size": object}).copy()
    batch.loc[batch.index[0], "size"] = "n/a"
    quality = review_inputs(transformer, batch, on_unparseable="warn", where="rows.csv")
    assert quality["unparseable"]["size"]["count"] == 1
    assert "warning: predict: 1 value in 1 column could not be read" in capsys.readouterr().out
    with pytest.raises(BadInput, match=r"rows.csv: column 'size': 1 value\(s\) that are not "
                                       r"numbers \(e.g. 'n/a'\)"):  # fmt: skip
        review_inputs(transformer, batch, on_unparseable="fail", where="rows.csv")
    assert PredictSpec(model="unit:1").on_unparseable == "warn"
    assert PredictSpec(model="unit:1", on_unparseable="fail").on_unparseable == "fail"


def test_the_run_summary_notes_leaks_and_unreadable_inputs():
    leaks = [
        {"column": "a", "metric": "AUC", "power": 0.971, "threshold": 0.85, "action": "flag"},
        {"column": "b", "metric": "R²", "power": 0.912, "threshold": 0.8, "action": "flag"},
    ]
    assert leak_note(leaks) == (
        "explore: 2 columns flagged as possible leaks (kept): a (AUC 0.97), b (R² 0.91)"
    )
    dropped = [{**leaks[0], "action": "drop"}]
    assert "1 column dropped as suspected leak (explore" in leak_note(dropped)
    quality = {"rows": 5, "unparseable": {"x": {"count": 2, "examples": ["?"]}}, "unseen": {}}
    notes = run_notes({"explore": {"suspected_leaks": leaks}, "predict": {"input_quality": quality},
                       "train": {}})  # fmt: skip
    assert len(notes) == 2 and notes[1].startswith("predict: 2 values in 1 column")
    assert run_notes({"explore": {"suspected_leaks": []}}) == []
