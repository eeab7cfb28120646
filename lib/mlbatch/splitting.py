"""The split: which rows train, tune and test a model, by the strategy the spec declares.

Shared by features (which prepares every split) and explore (whose target-based checks
look at the training rows only): both call split_rows with the same spec, so they agree
on every row.

- random: seeded; stratified by class (classification) or target decile (regression).
- time: train on the past, test on the future; rows with the same time stay together.
- group: no value of the group column in two splits.
- folds: k-fold CV on the rows outside test, by the same strategy (time: expanding
  windows); the last fold is also the train/valid split. `auto`: 5 folds for a random
  split of a small table.
Every split is a pure function of the data and the spec, and the rule is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from mlbatch.errors import BadInput
from mlbatch.spec import SplitSpec
from mlbatch.spec.features import AUTO_FOLDS, AUTO_FOLDS_MAX_ROWS

STRATA_BINS = 10  # target quantile bins that stratify a regression split
MAX_STRATA_SCANS = 32  # strata drawn by one pass over the rows each; more by one sort


@dataclass
class Split:
    rows: dict[str, np.ndarray]  # train / valid / test -> sorted row positions
    rule: dict  # how the rows were chosen, for the manifest and feature_schema.json
    folds: list[dict[str, np.ndarray]] = field(default_factory=list)  # train/valid per fold


def encode_target(target: pd.Series, task: str) -> tuple[np.ndarray, list | None]:
    """0/1 or 0..K-1 codes (classes in sorted order) for classification; floats otherwise."""
    if task == "regression":
        return target.to_numpy(dtype="float64"), None
    classes = sorted(target.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        shown = classes[0] if classes else "none"
        raise BadInput(
            f"target {target.name!r} has a single class ({shown!r}): a {task} model needs two "
            "or more"
        )
    codes = {label: code for code, label in enumerate(classes)}
    return target.map(codes).to_numpy(dtype="int64"), [_plain(c) for c in classes]


def split_rows(table: pd.DataFrame, labels: np.ndarray, task: str, spec: SplitSpec) -> Split:
    """Rows of each split (every row in exactly one), and folds when the spec asks."""
    _check_columns(table, spec)
    rule = spec.model_dump(exclude_none=True)
    if spec.strategy != "random":
        rule.pop("stratify")  # only random splits are stratified
    rows = np.arange(len(table))
    strata = _strata(labels, task) if spec.stratify and spec.strategy == "random" else None
    if spec.strategy == "time":
        when = _times(table[spec.time_column], spec.time_column)
        rest, test, boundary = _time_cut(rows, when, 1 - spec.test)
        rule["test_from"] = boundary
    elif spec.strategy == "group":
        groups = _groups(table[spec.group_column])
        rest, test = _group_cut(rows, groups, 1 - spec.test, spec.seed)
    else:
        rest, test = _random_cut(rows, round(spec.test * len(rows)), spec.seed, strata)
    k = _fold_count(spec, labels, rest, task, rule)
    if k:
        folds = _folds(rest, k, spec, table, strata)
        last = folds[-1]
        return Split({"train": last["train"], "valid": last["valid"], "test": np.sort(test)},
                     rule, folds)  # fmt: skip
    valid_share = spec.valid / (spec.train + spec.valid)
    if spec.strategy == "time":
        train, valid, boundary = _time_cut(rest, when[rest], 1 - valid_share)
        rule["valid_from"] = boundary
    elif spec.strategy == "group":
        train, valid = _group_cut(rest, groups[rest], 1 - valid_share, spec.seed + 1)
    else:
        inner = None if strata is None else strata[rest]
        train, valid = _random_cut(rest, round(spec.valid * len(rows)), spec.seed, inner)
    return Split({"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}, rule)


def _random_cut(rows: np.ndarray, taken: int, seed: int, strata: np.ndarray | None):
    """(kept, taken): `taken` rows drawn at random, keeping the strata's shares.

    One seeded permutation, then each stratum's first rows in it up to its quota (its
    share of `taken`, remainders to the largest fractions): linear in the rows, where
    scikit-learn's stratified shuffle sorted them (16 s of explore's 37 at 10M rows).
    """
    shuffle = np.random.default_rng(seed).permutation(len(rows))
    drawn = np.zeros(len(rows), bool)  # in rows' order, so both parts keep that order
    if strata is None:
        if not 0 < taken < len(rows):
            raise BadInput(f"cannot split {len(rows)} rows: {taken} of them would be drawn")
        drawn[shuffle[:taken]] = True
        return rows[~drawn], rows[drawn]
    low = int(strata.min())
    counts = np.bincount(strata - low)
    present = np.flatnonzero(counts)
    if counts[present].min() < 2:
        rare = present[counts[present].argmin()]
        raise BadInput(
            f"class {int(rare) + low!r} has {counts[rare]} row: too few to stratify the split; "
            "set features.split.stratify: false or drop the class in etl"
        )
    if not len(present) <= taken <= len(rows) - len(present):
        raise BadInput(f"cannot split {len(rows)} rows: {taken} drawn and {len(rows) - taken} "
                       f"kept cannot each hold every one of {len(present)} classes")  # fmt: skip
    quotas = _quotas(counts, taken)
    stratum = strata[shuffle] - low  # strata[i] is rows[i]'s
    if len(present) <= MAX_STRATA_SCANS:  # a pass per stratum: cheaper than a sort
        for value in present:
            drawn[shuffle[np.flatnonzero(stratum == value)[: quotas[value]]]] = True
    else:  # each row's rank within its stratum, in shuffled order, from one stable sort
        order = np.argsort(stratum, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(order)) - starts[stratum[order]]
        drawn[shuffle[order[rank < quotas[stratum[order]]]]] = True
    return rows[~drawn], rows[drawn]


def _quotas(counts: np.ndarray, taken: int) -> np.ndarray:
    """Each stratum's share of `taken` rows, whole: floors, then one more for the largest
    remainders (ties to the lower stratum)."""
    exact = counts * (taken / counts.sum())
    quotas = np.floor(exact).astype(np.int64)
    short = taken - int(quotas.sum())
    if short:
        quotas[np.argsort(-(exact - quotas), kind="stable")[:short]] += 1
    return np.minimum(quotas, counts)


def _time_cut(rows: np.ndarray, when: np.ndarray, share: float):
    """(earlier, later, boundary): rows before the time at the share's position, and the
    rest; equal times never straddle the boundary."""
    ordered = np.sort(when)
    boundary = ordered[min(int(round(share * len(when))), len(when) - 1)]
    earlier = when < boundary
    if not earlier.any() or earlier.all():
        raise BadInput(f"the time column has too few distinct times to split at {share:.0%}")
    return rows[earlier], rows[~earlier], _boundary_text(boundary)


def _group_cut(rows: np.ndarray, groups: np.ndarray, share: float, seed: int):
    """Groups in a seeded order fill the first part up to its share of rows."""
    names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise BadInput("the group column has a single group: nothing to split by")
    order = np.random.default_rng(seed).permutation(len(names))
    filled = np.cumsum(sizes[order]) <= share * len(rows)
    filled[0], filled[-1] = True, False  # each part gets at least one group
    first = np.zeros(len(names), bool)
    first[order[filled]] = True
    return rows[first[inverse]], rows[~first[inverse]]


def _fold_count(
    spec: SplitSpec, labels: np.ndarray, rest: np.ndarray, task: str, rule: dict
) -> int | None:
    """The folds to make: the spec's k, or for `auto` AUTO_FOLDS on a small random split
    (recorded in the rule with the reason, as `folds` and `folds_chosen`)."""
    if spec.folds != "auto":
        return spec.folds
    rule.pop("folds")
    defaults = SplitSpec.model_fields
    if spec.strategy != "random" or (spec.train, spec.valid) != (
        defaults["train"].default,
        defaults["valid"].default,
    ):
        return None  # a time or group split, or fractions of the spec's own, are its design
    if len(rest) > AUTO_FOLDS_MAX_ROWS:
        return None
    if task != "regression":
        smallest = np.unique(labels[rest], return_counts=True)[1].min()
        if smallest < 2 * AUTO_FOLDS:
            rule["folds_chosen"] = (f"none: a class has {smallest} rows outside test, too few "
                                    f"for {AUTO_FOLDS} folds")  # fmt: skip
            return None
    rule["folds"] = AUTO_FOLDS
    rule["folds_chosen"] = (
        f"auto: {len(rest):,} rows outside test (at most "
        f"{AUTO_FOLDS_MAX_ROWS:,}): one validation split is too noisy"
    )
    return AUTO_FOLDS


def _folds(rest: np.ndarray, k: int, spec: SplitSpec, table: pd.DataFrame, strata) -> list[dict]:
    if spec.strategy == "time":
        when = _times(table[spec.time_column], spec.time_column)[rest]
        # Expanding windows: fold i trains on blocks 0..i and validates on block i + 1.
        edges = np.quantile(when, np.linspace(0, 1, k + 2)[1:-1], method="lower")
        blocks = np.searchsorted(edges, when, side="right")
        pairs = [(rest[blocks <= i], rest[blocks == i + 1]) for i in range(k)]
    elif spec.strategy == "group":
        groups = _groups(table[spec.group_column])[rest]
        splitter = GroupKFold(k, shuffle=True, random_state=spec.seed)
        pairs = [(rest[a], rest[b]) for a, b in splitter.split(rest, groups=groups)]
    else:
        inner = None if strata is None else strata[rest]
        kind = KFold if inner is None else StratifiedKFold
        splitter = kind(k, shuffle=True, random_state=spec.seed)
        pairs = [(rest[a], rest[b]) for a, b in splitter.split(rest, inner)]
    if any(len(train) == 0 or len(valid) == 0 for train, valid in pairs):
        raise BadInput(f"cannot make {k} folds of {len(rest)} rows: a fold would be empty")
    return [{"train": np.sort(train), "valid": np.sort(valid)} for train, valid in pairs]


def _strata(labels: np.ndarray, task: str) -> np.ndarray:
    if task != "regression":
        return labels
    ranks = np.empty(len(labels))  # 1..n, ties in row order (a stable sort: one pass)
    ranks[np.argsort(labels, kind="stable")] = np.arange(1, len(labels) + 1)
    return np.ceil(ranks / len(ranks) * STRATA_BINS).astype("int64")


def _times(values: pd.Series, column: str) -> np.ndarray:
    if values.isna().any():
        raise BadInput(f"features.split.time_column {column!r} has {values.isna().sum()} "
                       "missing values: every row needs a time to be split by time")  # fmt: skip
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy()
    try:  # naive datetime64 in UTC: sortable and comparable at numpy speed
        return pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy()
    except (ValueError, TypeError):
        raise BadInput(
            f"features.split.time_column {column!r} is neither a date nor a number"
        ) from None


def _groups(values: pd.Series) -> np.ndarray:
    """Group labels as strings; rows without a group form one group of their own."""
    return values.astype("str").where(values.notna(), "<missing>").to_numpy()


def _boundary_text(value) -> str | float:
    if isinstance(value, np.datetime64):  # times were made naive in UTC (_times)
        return pd.Timestamp(value, tz="UTC").isoformat()
    return value.item() if hasattr(value, "item") else value


def _check_columns(table: pd.DataFrame, spec: SplitSpec) -> None:
    for key in ("time_column", "group_column"):
        name = getattr(spec, key)
        if name is not None and spec.strategy == key.split("_")[0] and name not in table:
            raise BadInput(f"features.split.{key}: column {name!r} is not in etl's table")


def _plain(value):
    """JSON-friendly class label (numpy scalars become Python ones)."""
    return value.item() if hasattr(value, "item") else value
