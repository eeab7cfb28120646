"""Split strategies: every row in exactly one split, nothing shared across splits that
must not be (times, groups), reproducible from the seed, folds that cover the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlbatch import splitting
from mlbatch.errors import BadInput
from mlbatch.spec import SplitSpec
from mlbatch.splitting import split_rows

ROWS = 2000


def table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    when = pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 400, ROWS), "D")
    data = pd.DataFrame({
        "when": when, "tick": rng.integers(0, 50, ROWS), "who": rng.integers(0, 150, ROWS),
    })  # fmt: skip
    labels = (rng.random(ROWS) < 0.2).astype("int64")  # imbalanced: 20% positive
    return data, labels


def assert_partition(split) -> None:
    everything = np.concatenate(list(split.rows.values()))
    assert len(everything) == ROWS and len(np.unique(everything)) == ROWS
    for rows in split.rows.values():
        assert (np.diff(rows) > 0).all()  # sorted row positions


def test_by_default_the_split_is_70_20_10_stratified():
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec())
    assert_partition(split)
    sizes = {name: len(rows) for name, rows in split.rows.items()}
    assert sizes == {"train": 1400, "valid": 400, "test": 200}
    for rows in split.rows.values():
        assert labels[rows].mean() == pytest.approx(0.2, abs=0.01)
    assert split.rule["strategy"] == "random" and split.rule["stratify"] is True
    assert not split.folds and "folds" not in split.rule


def test_a_stratified_cut_gives_each_class_its_share_to_the_row():
    data = pd.DataFrame({"x": np.arange(ROWS)})
    labels = np.repeat([0, 1, 2], [1000, 700, 300])[np.random.default_rng(1).permutation(ROWS)]
    split = split_rows(data, labels, "multiclass", SplitSpec(folds=None))
    assert_partition(split)
    shares = {name: np.bincount(labels[rows]).tolist() for name, rows in split.rows.items()}
    assert shares == {"train": [700, 490, 210], "valid": [200, 140, 60], "test": [100, 70, 30]}


def test_auto_folds_cross_validate_a_small_table_in_five_stratified_folds():
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec(folds="auto"))
    assert_partition(split)
    assert len(split.folds) == 5 and split.rule["folds"] == 5
    assert split.rule["folds_chosen"].startswith("auto: 1,800 rows outside test")
    assert len(split.rows["test"]) == 200 and len(split.rows["valid"]) == 360
    for fold in split.folds:
        assert labels[fold["valid"]].mean() == pytest.approx(0.2, abs=0.02)


def test_auto_folds_leave_a_large_table_one_validation_split():
    rows = 11_200  # 10,080 outside test: more than AUTO_FOLDS_MAX_ROWS
    data = pd.DataFrame({"x": np.arange(rows)})
    labels = np.arange(rows) % 5 == 0
    split = split_rows(data, labels.astype("int64"), "binary", SplitSpec(folds="auto"))
    assert not split.folds and "folds" not in split.rule and "folds_chosen" not in split.rule
    assert len(split.rows["valid"]) == 2240


@pytest.mark.parametrize(
    "extra",
    [{"strategy": "group", "group_column": "who"}, {"strategy": "time", "time_column": "when"}],
)
def test_auto_folds_leave_time_and_group_splits_without_folds(extra):
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec(folds="auto", **extra))
    assert not split.folds and "folds" not in split.rule


def test_auto_folds_leave_a_class_too_rare_for_five_folds_one_validation_split():
    data, labels = table()
    labels = labels.copy()
    labels[np.flatnonzero(labels == 0)[:8]] = 2  # 7 or 8 rows of class 2 outside test
    split = split_rows(data, labels, "multiclass", SplitSpec(folds="auto"))
    assert not split.folds and "folds" not in split.rule
    assert "too few for 5 folds" in split.rule["folds_chosen"]


def test_the_seed_decides_the_split():
    data, labels = table()
    first = split_rows(data, labels, "binary", SplitSpec(seed=3))
    again = split_rows(data, labels, "binary", SplitSpec(seed=3))
    other = split_rows(data, labels, "binary", SplitSpec(seed=4))
    assert all((first.rows[n] == again.rows[n]).all() for n in first.rows)
    assert not (first.rows["test"] == other.rows["test"]).all()


def test_regression_is_stratified_by_target_quantiles():
    data, _ = table()
    target = np.random.default_rng(5).lognormal(0, 1, ROWS)
    split = split_rows(data, target, "regression", SplitSpec())
    assert_partition(split)
    medians = [np.median(target[rows]) for rows in split.rows.values()]
    assert max(medians) - min(medians) < 0.1


def test_unstratified_random_split_with_its_own_fractions_has_no_automatic_folds():
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec(stratify=False, train=0.5, valid=0.3,
                                                         test=0.2, folds="auto"))  # fmt: skip
    assert_partition(split)
    assert [len(r) for r in split.rows.values()] == [1000, 600, 400]


@pytest.mark.parametrize("column", ["when", "tick"])
def test_time_split_trains_on_the_past_and_tests_on_the_future(column):
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec(strategy="time", time_column=column))
    assert_partition(split)
    times = data[column]
    train, valid, test = (times.iloc[split.rows[n]] for n in ("train", "valid", "test"))
    assert train.max() < valid.min() and valid.max() < test.min()  # equal times stay together
    assert 0.6 < len(split.rows["train"]) / ROWS < 0.8
    assert {"valid_from", "test_from"} <= set(split.rule)


def test_group_split_never_shares_a_group():
    data, labels = table()
    split = split_rows(data, labels, "binary", SplitSpec(strategy="group", group_column="who"))
    assert_partition(split)
    groups = {name: set(data["who"].iloc[rows]) for name, rows in split.rows.items()}
    assert not groups["train"] & groups["valid"]
    assert not groups["train"] & groups["test"] and not groups["valid"] & groups["test"]
    assert 0.6 < len(split.rows["train"]) / ROWS < 0.8


@pytest.mark.parametrize(
    "strategy, extra",
    [("random", {}), ("group", {"group_column": "who"}), ("time", {"time_column": "when"})],
)
def test_folds_cover_the_rows_outside_test(strategy, extra):
    data, labels = table()
    spec = SplitSpec(strategy=strategy, folds=4, **extra)
    split = split_rows(data, labels, "binary", spec)
    assert_partition(split)
    assert len(split.folds) == 4
    test = set(split.rows["test"])
    validated = np.concatenate([fold["valid"] for fold in split.folds])
    for fold in split.folds:
        assert not set(fold["train"]) & set(fold["valid"])
        assert not (set(fold["train"]) | set(fold["valid"])) & test
    last = split.folds[-1]
    assert (split.rows["train"] == last["train"]).all() and (
        split.rows["valid"] == last["valid"]
    ).all()
    if strategy == "time":  # expanding windows: always validate on a later block
        for fold in split.folds:
            assert data["when"].iloc[fold["train"]].max() < data["when"].iloc[fold["valid"]].min()
    else:  # every row outside test is validated exactly once
        assert len(validated) == len(set(validated)) == ROWS - len(test)
    if strategy == "group":
        for fold in split.folds:
            assert not set(data["who"].iloc[fold["train"]]) & set(data["who"].iloc[fold["valid"]])


def test_a_class_of_one_row_cannot_be_stratified():
    data, labels = table()
    labels = labels.copy()
    labels[7] = 2
    with pytest.raises(BadInput, match="class 2 has 1 row"):
        split_rows(data, labels, "multiclass", SplitSpec())


def test_time_split_needs_a_time_in_every_row():
    data, labels = table()
    data.loc[3, "when"] = pd.NaT
    with pytest.raises(BadInput, match="'when' has 1 missing values"):
        split_rows(data, labels, "binary", SplitSpec(strategy="time", time_column="when"))


def test_group_split_needs_two_groups():
    data, labels = table()
    with pytest.raises(BadInput, match="single group"):
        split_rows(data.assign(who=1), labels, "binary",
                   SplitSpec(strategy="group", group_column="who"))  # fmt: skip


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"train": 0.6}, "add up to 1"),
        ({"strategy": "time"}, "needs time_column"),
        ({"strategy": "group"}, "needs group_column"),
        ({"folds": 1}, "folds must be 2 to 20, auto or null, not 1"),
        ({"folds": 21}, "folds must be 2 to 20"),
    ],
)
def test_inconsistent_split_specs_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        SplitSpec.model_validate(fields)


def test_many_classes_are_drawn_by_a_sort_exactly_as_few_are_by_scans(monkeypatch):
    data = pd.DataFrame({"x": np.arange(ROWS)})
    labels = np.random.default_rng(2).integers(0, 40, ROWS)
    scanned = split_rows(data, labels, "multiclass", SplitSpec(folds=None))
    monkeypatch.setattr(splitting, "MAX_STRATA_SCANS", 1)
    sorted_ = split_rows(data, labels, "multiclass", SplitSpec(folds=None))
    assert all((scanned.rows[n] == sorted_.rows[n]).all() for n in scanned.rows)
