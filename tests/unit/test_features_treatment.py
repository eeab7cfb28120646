"""The features stage's per-column treatments: chosen from the training rows, overridable
in the spec, fitted into one transformer that skops saves and loads against the
allow-list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from mlbatch import preprocessing
from mlbatch.errors import BadInput
from mlbatch.spec import FeaturesSpec
from mlbatch_jobs.features.prepare import ROW_ID, TARGET, fit_prepare
from mlbatch_jobs.features.treatment import choose

ROWS = 3000


def raw(seed: int = 0, rows: int = ROWS) -> tuple[pd.DataFrame, np.ndarray]:
    """Columns for every treatment, and a binary target that depends on several of them."""
    rng = np.random.default_rng(seed)
    skewed = rng.lognormal(3, 1, rows)
    symmetric = rng.normal(50, 10, rows)
    symmetric[rng.random(rows) < 0.2] = np.nan  # missing often: a was-missing feature
    levels = rng.integers(0, 4, rows).astype("float64")
    low = rng.choice(["red", "green", "blue", "rare"], rows, p=[0.5, 0.3, 0.198, 0.002])
    high = rng.integers(0, 600, rows)
    very_high = rng.integers(0, 30_000, rows)
    when = pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 365 * 24, rows), "h"
    )
    score = np.log(skewed) / 3 + (low == "red") + (high % 7 == 0) + rng.normal(0, 0.5, rows)
    table = pd.DataFrame({
        "skewed": skewed, "symmetric": symmetric, "levels": levels, "low": low,
        "high": [f"h{v}" for v in high], "very_high": [f"v{v}" for v in very_high],
        "when": when, "flag": rng.random(rows) < 0.3,
    })  # fmt: skip
    table.loc[rng.random(rows) < 0.05, "low"] = None
    return table, (score > 1.2).astype("int64")


KINDS = {
    "skewed": "numeric", "symmetric": "numeric", "levels": "numeric", "flag": "numeric",
    "low": "categorical", "high": "categorical", "very_high": "categorical", "when": "date",
}  # fmt: skip


def prepared(spec: FeaturesSpec | None = None, *, task="binary", kinds=KINDS, seed=0):
    table, labels = raw(seed)
    noise = np.random.default_rng(1)
    if task == "regression":
        labels = labels + noise.normal(size=len(labels))
    elif task == "multiclass":
        labels = labels * 2 - (noise.random(len(labels)) < 0.3) * (labels == 0) + 1  # 0, 1, 3
        labels = np.unique(labels, return_inverse=True)[1]
    rows = {"train": np.arange(2000), "valid": np.arange(2000, 2500), "test": np.arange(2500, ROWS)}
    spec = spec or FeaturesSpec(max_categories=50, hash_above=1000)
    plan, choices = choose(table.iloc[rows["train"]], kinds, spec, task=task, seed=0)
    return plan, {c.column: c for c in choices}, fit_prepare(plan, table, labels, rows), table


@pytest.fixture(scope="module")
def default():
    return prepared()


def test_imputation_follows_the_shape_of_the_column(default):
    _, choices, _, _ = default
    assert choices["skewed"].treatment["impute"] == "median"
    assert "skewed" in choices["skewed"].why[0]
    assert choices["symmetric"].treatment["impute"] == "mean"
    assert choices["levels"].treatment["impute"] == "most_frequent"
    assert choices["flag"].treatment["impute"] == "most_frequent"


def test_missing_indicator_only_where_enough_training_rows_are_missing(default):
    _, choices, result, _ = default
    names = {f["name"]: f for f in result.features}
    assert choices["symmetric"].treatment["indicator"] is True
    assert names["missingindicator_symmetric"]["sources"] == ["symmetric"]
    assert not any(n.startswith("missingindicator_skewed") for n in names)
    train = result.frames["train"]
    assert set(train["missingindicator_symmetric"].unique()) == {0.0, 1.0}
    assert not train.drop(columns=[ROW_ID, TARGET]).isna().any().any()  # all imputed


def test_categoricals_by_cardinality(default):
    _, choices, result, _ = default
    assert [choices[c].treatment["encoding"] for c in ("low", "high", "very_high")] == [
        "codes", "target", "hashing"
    ]  # fmt: skip
    kinds = {f["name"]: (f["kind"], f["treatment"]) for f in result.features}
    assert kinds["low"] == ("categorical", "integer codes")
    assert kinds["high"] == ("numeric", "target encoding")
    assert kinds["very_high"] == ("categorical", "hashing")
    train = result.frames["train"]
    assert train["low"].dtype == "int32" and train["very_high"].dtype == "int32"
    assert train["very_high"].between(0, 1023).all()


def test_rare_categories_share_a_code_and_missing_or_unseen_is_minus_one(default):
    plan, _, result, table = default
    frame = result.frames["train"].assign(low_raw=table["low"].iloc[:2000].to_numpy())
    codes = frame.groupby("low_raw", dropna=False)["low"].unique()
    assert codes.loc[np.nan].tolist() == [preprocessing.UNKNOWN_CODE]
    common = {codes[c][0] for c in ("red", "green", "blue")}
    assert len(common) == 3 and codes["rare"][0] not in common  # "rare": < 10 training rows
    unseen = table.iloc[:3].assign(low="purple")
    coded = preprocessing.transform(result.transformer, unseen, ["low", "very_high"])
    assert (coded["low"] == preprocessing.UNKNOWN_CODE).all()


def test_target_encoding_of_unseen_values_is_the_training_mean(default):
    _, _, result, table = default
    unseen = preprocessing.transform(result.transformer, table.iloc[:5].assign(high="new"), [])
    encoder = result.transformer.named_steps["columns"].named_transformers_["target"]
    assert np.allclose(unseen["high"], encoder.target_mean_)


def test_date_parts_cyclical_and_elapsed(default):
    plan, choices, result, table = default
    parts = choices["when"].treatment["parts"]
    assert parts == ["month", "day", "dayofweek", "hour"]  # year is one value in training
    names = [f["name"] for f in result.features if f["sources"] == ["when"]]
    assert "when_month_sin" in names and "when_hour_cos" in names and "when_year" not in names
    train = result.frames["train"]
    angle = 2 * np.pi * train["when_hour"] / 24
    assert np.allclose(train["when_hour_sin"], np.sin(angle))
    origin = table["when"].iloc[:2000].min()
    elapsed = (table["when"].iloc[:2000] - origin).dt.total_seconds() / 86400
    assert np.allclose(train["when_elapsed_days"], elapsed.to_numpy())


def test_overrides_in_the_spec_win():
    spec = FeaturesSpec.model_validate({
        "max_categories": 50, "hash_above": 1000,
        "columns": {
            "skewed": {"impute": "constant", "fill_value": -1, "indicator": True},
            "symmetric": {"impute": "iterative", "indicator": False},
            "high": {"encoding": "hashing"}, "very_high": {"encoding": "codes"},
        },
    })  # fmt: skip
    table, labels = raw()
    table.loc[:10, "skewed"] = np.nan
    plan, chosen = choose(table.iloc[:2000], KINDS, spec, task="binary", seed=0)
    choices = {c.column: c for c in chosen}
    assert plan.impute["skewed"] == "constant" and plan.fill_values["skewed"] == -1
    assert plan.impute["symmetric"] == "iterative"
    assert plan.indicators == ["skewed"]
    assert plan.encoding["high"] == "hashing" and plan.encoding["very_high"] == "codes"
    assert choices["skewed"].why[0] == "imputation: set in the spec"
    result = fit_prepare(
        plan, table, labels, {"train": np.arange(2000), "test": np.arange(2000, ROWS)}
    )
    train = result.frames["train"]
    assert (train.loc[:10, "skewed"] == -1).all() and (
        train.loc[:10, "missingindicator_skewed"] == 1
    ).all()
    assert not train["symmetric"].isna().any()
    assert train["very_high"].max() <= spec.max_categories  # codes, capped


def test_declared_cross_is_a_category_of_its_own():
    spec = FeaturesSpec(crosses=[["low", "levels"]], max_categories=50, hash_above=1000)
    table, labels = raw()
    plan, choices = choose(table.iloc[:2000], KINDS, spec, task="binary", seed=0)
    cross = next(c for c in choices if c.kind == "cross")
    assert cross.column == "low_x_levels" and cross.treatment["encoding"] == "codes"
    result = fit_prepare(
        plan, table, labels, {"train": np.arange(2000), "test": np.arange(2000, ROWS)}
    )
    feature = next(f for f in result.features if f["name"] == "low_x_levels")
    assert feature["sources"] == ["low", "levels"] and feature["kind"] == "categorical"
    crossed = preprocessing.FeatureCrosses([["low", "levels"]]).transform(table[["low", "levels"]])
    pairs = pd.DataFrame({
        "value": crossed["low_x_levels"].iloc[:2000].to_numpy(),
        "code": result.frames["train"]["low_x_levels"].to_numpy(),
    })  # fmt: skip
    assert (pairs.groupby("value")["code"].nunique() == 1).all()  # one code per pair
    assert (pairs.loc[pairs["value"].isna(), "code"] == preprocessing.UNKNOWN_CODE).all()
    assert pairs["value"].str.startswith("red|").any()


@pytest.mark.parametrize(
    "reduce, expected",
    [
        ({"method": "variance", "min_variance": 0.5}, lambda kept: "flag" not in kept),
        ({"method": "mutual_info", "keep": 5}, lambda kept: len(kept) == 5),
        ({"method": "model", "keep": 4}, lambda kept: len(kept) == 4 and "skewed" in kept),
        ({"method": "pca", "keep": 3}, lambda kept: kept[:3] == ["pca_0", "pca_1", "pca_2"]),
    ],
)
def test_reduction_keeps_what_it_records(reduce, expected):
    spec = FeaturesSpec(reduce=reduce, max_categories=50, hash_above=1000)
    _, _, result, _ = prepared(spec)
    kept = result.transformer.named_steps["reduce"].kept_
    assert expected(kept)
    assert [f["name"] for f in result.features] == kept
    assert list(result.frames["test"].columns) == [ROW_ID, *kept, TARGET]
    if reduce["method"] == "pca":  # categorical codes pass through untouched
        assert "low" in kept and "very_high" in kept
        assert next(f for f in result.features if f["name"] == "pca_0")["treatment"] == (
            "principal component"
        )


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("reduce", ["none", "pca", "model"])
def test_transformer_round_trips_through_skops_with_the_allow_list(tmp_path, task, reduce):
    spec = FeaturesSpec.model_validate({
        "max_categories": 50, "hash_above": 1000,
        "reduce": {"method": reduce, "keep": 4 if reduce != "none" else None},
        "columns": {"symmetric": {"impute": "iterative"}},
    })  # fmt: skip
    plan, _, result, table = prepared(spec, task=task)
    path = tmp_path / "transformer.skops"
    preprocessing.save_transformer(result.transformer, path)
    assert set(sio.get_untrusted_types(file=path)) <= preprocessing.TRUSTED_TYPES
    loaded = preprocessing.load_transformer(path)
    categorical = [f["name"] for f in result.features if f["kind"] == "categorical"]
    again = preprocessing.transform(loaded, table.iloc[2500:], categorical)
    expected = result.frames["test"].drop(columns=[ROW_ID, TARGET])
    pd.testing.assert_frame_equal(again.reset_index(drop=True), expected)


class Unknown(BaseEstimator):
    """A type no allow-list names: loading it could run code of its module."""


def test_a_type_outside_the_allow_list_is_refused(tmp_path):
    path = tmp_path / "unknown.skops"
    sio.dump(Pipeline([("step", Unknown())]), path)
    with pytest.raises(BadInput, match="not on the allow-list.*Unknown"):
        preprocessing.load_transformer(path)


def test_rows_missing_an_input_column_are_bad_input(default):
    _, _, result, table = default
    with pytest.raises(BadInput, match="lack columns"):
        result.transformer.transform(table.drop(columns=["low"]))


def test_date_parts_are_local_to_the_column_time_zone():
    local = pd.date_range("2013-01-01 05:00", periods=48, freq="h", tz="America/New_York")
    rows = pd.DataFrame({"t": local})
    steps = [preprocessing.InputColumns(dates=["t"]), preprocessing.DateFeatures({"t": ["hour"]})]
    for step in steps:
        rows = step.fit(rows).transform(rows)
    assert rows["t_hour"].iloc[0] == 5  # departure at 5 in New York, not UTC's 10
    assert rows["t_elapsed_days"].iloc[24] == pytest.approx(1.0)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_sorted_vocabulary_changes_no_code_and_no_encoding(task):
    """The encoders see vocabulary positions instead of strings: every code (rare ones
    grouped, missing and unseen -1) and every target encoding (cross-fitted in training,
    the training mean for unseen values) is what the strings got."""
    spec = FeaturesSpec(crosses=[["low", "levels"]], max_categories=20, hash_above=1000)
    table, labels = raw(seed=3)
    if task != "binary":
        labels = labels * 2 + (np.arange(len(labels)) % 2) if task == "multiclass" else (
            labels + np.random.default_rng(2).normal(size=len(labels))
        )  # fmt: skip
    plan, _ = choose(table.iloc[:2000], KINDS, spec, task=task, seed=0)
    assert {plan.encoding[c] for c in ("low", "high", "very_high")} >= {"codes", "target"}
    later = table.iloc[2000:].copy()
    later.loc[later.index[:50], "high"] = "never seen"
    later.loc[later.index[50:60], "low"] = None
    with_vocabulary = preprocessing.build_transformer(plan)
    strings = Pipeline(
        [s for s in preprocessing.build_transformer(plan).steps if s[0] != "vocabulary"]
    )
    assert len(strings.steps) == len(with_vocabulary.steps) - 1
    fitted = with_vocabulary.fit_transform(table.iloc[:2000], labels[:2000])
    expected = strings.fit_transform(table.iloc[:2000], labels[:2000])
    pd.testing.assert_frame_equal(fitted, expected)
    pd.testing.assert_frame_equal(with_vocabulary.transform(later), strings.transform(later))
    assert (with_vocabulary.transform(later)["low"].iloc[50:60] == preprocessing.UNKNOWN_CODE).all()


def test_median_imputer_fills_what_simple_imputer_fills():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({
        "some_missing": rng.normal(size=1000), "even_count": rng.lognormal(size=1000),
        "odd_count": rng.lognormal(size=1000), "empty": np.full(1000, np.nan),
        "whole": rng.integers(0, 5, 1000).astype("float64"),
    })  # fmt: skip
    frame.loc[rng.random(1000) < 0.2, ["some_missing", "whole"]] = np.nan
    frame.loc[frame.index[:1], "odd_count"] = np.nan  # 999 present: the middle one
    later = frame.sample(frac=1.0, random_state=1)
    ours = preprocessing.MedianImputer().fit(frame)
    sklearn = SimpleImputer(strategy="median", keep_empty_features=True).fit(frame)
    np.testing.assert_array_equal(ours.statistics_, sklearn.statistics_)
    np.testing.assert_array_equal(ours.transform(later).to_numpy(), sklearn.transform(later))
    assert list(ours.get_feature_names_out()) == list(frame.columns)


def test_a_long_category_does_not_widen_the_saved_vocabulary(tmp_path):
    values = pd.DataFrame({"c": [f"category {i}" for i in range(2000)] + ["x" * 5000]})
    vocabulary = preprocessing.SortedVocabulary(["c"]).fit(values)
    path = tmp_path / "vocabulary.skops"
    sio.dump(vocabulary, path)
    assert path.stat().st_size < 1_000_000  # 2,001 entries of 5,000 characters: 40 MB
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    position = {value: n for n, value in enumerate(sorted(values["c"]))}
    assert loaded.transform(values)["c"].tolist() == [position[v] for v in values["c"]]
