"""Column advice: which columns to drop or watch, each with its reasons (advice.json).

Drops are for what can never be a fair feature: the target's lineage (etl's
schema.json), the spec's known_after_prediction and id_columns, constant and
mostly-missing columns, and identifiers (text unique per row or nearly, integer row
numbers). Everything else that looks odd is a flag, kept as a feature: a column's own
predictive power above the spec's threshold (a suspected leak, reported loudly; dropped
only with explore.drop_suspected_leaks), near-constant columns, whole numbers distinct in
most rows but spread like a quantity, and categoricals of high cardinality, integer
codes among them. A strong predictor is what a model is for; dropping one because it is
strong is how a run "succeeds" with a useless model.

The checks read the data and the spec; the one thing a name may add is that an integer
column unique per row whose name ends in the word "id" is an identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from mlbatch.spec import ExploreSpec
from mlbatch_jobs.explore import power
from mlbatch_jobs.explore.tally import ColumnTally, TableTally, tally_table
from mlbatch_jobs.explore.tally import top as top_value

UNIQUE_SHARE = 0.95  # distinct in this share of rows: the column identifies rows
TEXT_ID_SHARE = 0.5  # text distinct in this share of rows: an identifier, not a category
MONOTONIC_SHARE = 0.5  # a monotonic integer column this distinct is a sequence
# Integers unique per row are row numbers only when they fill their range: at least this
# share of the values min, min + step, ..., max occur (step: the gcd of the gaps). Counts
# and amounts in whole units spread over a much wider range, so they stay features. And
# measured values on a grid only twice the row count collide (about 79% distinct, not the
# 95% of UNIQUE_SHARE): a column both dense and unique was assigned, not measured.
ID_DENSITY = 0.5
ID_WORDS = frozenset({"id", "uuid", "guid"})  # a name ending in one of these words
# An integer column is a code (flight numbers, zip codes) when its values' identity
# predicts the target clearly better than their order does: by this factor, and by at
# least MIN_CODE_EXCESS above chance. A quantity's order carries most of what it knows.
CODE_MARGIN = 1.25
MIN_CODE_EXCESS = 0.02
# single_column_power joins these only with explore.drop_suspected_leaks.
DROP_CHECKS = (
    "target_lineage", "known_after_prediction", "declared_identifier", "mostly_missing",
    "constant", "unique_per_row", "monotonic", "very_high_cardinality",
)  # fmt: skip
POWER_LABEL = {"binary": "AUC", "multiclass": "AUC", "regression": "R²"}


@dataclass(frozen=True)
class Facts:
    """What the checks need to know about one column, over every row (tally.py): exact,
    but for a column with more than tally.EXACT_DISTINCT values (`estimated`), whose
    distinct count is a HyperLogLog estimate and whose top value is counted on a sample
    of `top_rows` present values."""

    kind: str  # numeric, boolean, datetime, string or other (summary.column_kind)
    rows: int
    missing: int
    distinct: int
    top: Any  # the most frequent value
    top_count: int
    integer: bool  # integer dtype, or floats that are all whole numbers
    monotonic: bool
    dense: bool = False  # integers filling at least ID_DENSITY of their range (row numbers)
    estimated: bool = False
    top_rows: int | None = None  # the present values top_count is out of; None: every one


def column_facts(column: pa.ChunkedArray) -> Facts:
    """A column's facts, every value counted exactly."""
    tally = ColumnTally(column.type, exact_distinct=None)
    tally.add(column)
    tally.finish()
    return tallied_facts(tally)


def tallied_facts(tally: ColumnTally, sample: pa.ChunkedArray | None = None) -> Facts:
    """The facts of a column from its tally (the top value of an estimated column from
    its values in the sample)."""
    counts = tally.value_counts(sample)
    top, top_count = top_value(counts)
    present = tally.rows - tally.missing
    integer = tally.integer_type or (tally.kind == "numeric" and tally.whole and present > 0)
    distinct = tally.distinct() or 0
    span = tally.span()
    monotonic = dense = False
    if integer and distinct > MONOTONIC_SHARE * max(present, 1) and span is not None:
        dense, monotonic = distinct >= ID_DENSITY * span, tally.monotonic
    return Facts(
        kind=tally.kind, rows=tally.rows, missing=tally.missing, distinct=distinct,
        top=top, top_count=top_count, integer=integer, monotonic=monotonic, dense=dense,
        estimated=tally.estimated,
        top_rows=sum(n for _, n in counts) if tally.estimated else None,
    )  # fmt: skip


def fills_its_range(values: pa.Array) -> bool | None:
    """Whether distinct whole numbers cover at least ID_DENSITY of min, min + step, ..., max
    (step: the greatest common divisor of the gaps between them); None when they are too
    large to be exact integers."""
    tally = ColumnTally(values.type, exact_distinct=None)
    tally.add(values)
    span = tally.span()
    return None if span is None else len(values) >= ID_DENSITY * span


def named_as_identifier(column: str) -> bool:
    """The name's last word is id, uuid or guid: id, customer_id, CustomerID, order-uuid."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", column)
    return bool(words) and words[-1].lower() in ID_WORDS


def advise(
    table: pa.Table | TableTally,
    sample: pd.DataFrame,
    *,
    target: str,
    task: str,
    lineage: Mapping[str, Any],
    known_after_prediction: Iterable[str],
    id_columns: Iterable[str],
    settings: ExploreSpec,
    training_rows: int | None = None,
) -> dict[str, Any]:
    """advice.json: per column of the sample (the columns explore can analyse) an action
    (drop, flag or keep) with its reasons, and the suspected leaks.

    `sample` holds training rows only (see training.py): every check that reads the target
    runs on it; `table` (every row, or its tally) serves the checks that read a column's
    own values.
    """
    if isinstance(table, pa.Table):
        table = tally_table(table.select(list(sample.columns)), table.slice(0, 0))
    facts = {
        name: tallied_facts(table.columns[name], table.sample_column(name))
        for name in sample.columns
    }
    scores = power.power_scores(sample, target, task, seed=settings.seed)
    codes = integer_codes(sample, target, task, facts, settings)
    reasons: dict[str, list[dict]] = {name: [] for name in sample.columns if name != target}

    def add(column: str, check: str, message: str) -> None:
        if column in reasons:
            reasons[column].append({"check": check, "message": message})

    for column, message in lineage_leaks(target, lineage).items():
        add(column, "target_lineage", message)
    threshold, metric = (
        (settings.leak_r2, "R²") if task == "regression" else (settings.leak_auc, "ROC AUC")
    )
    outcome = (
        "dropped (explore.drop_suspected_leaks)"
        if settings.drop_suspected_leaks
        else "kept; check how it is recorded, or set explore.drop_suspected_leaks"
    )
    for column, value in scores.items():
        if value > threshold:
            add(column, "single_column_power",
                f"alone it predicts the target with {metric} {value:.3f} (cross-fitted on "
                f"training rows; above {threshold}): a suspected leak, {outcome}")  # fmt: skip
    for column, message in known_after(known_after_prediction, lineage, target).items():
        add(column, "known_after_prediction", message)
    for column in id_columns:
        add(column, "declared_identifier", "the spec lists it in id_columns")
    for column, fact in facts.items():
        for check, message in data_checks(fact, settings, code=codes.get(column), name=column):
            add(column, check, message)

    drops = set(DROP_CHECKS) | ({"single_column_power"} if settings.drop_suspected_leaks else set())
    columns, leaks = {}, []
    for column, found in reasons.items():
        checks = {r["check"] for r in found}
        dropped = bool(checks & drops)
        entry: dict[str, Any] = {"action": "drop" if dropped else "flag" if found else "keep"}
        entry["reasons"] = found
        if column in scores:
            entry["power"] = scores[column]
        if column in codes:  # its power as the category it is
            entry["treat_as"], entry["power"] = "categorical", codes[column]["identity"]
        # A suspected leak is one only power points at: lineage, known-after and the rest
        # are certain reasons, and those columns are dropped whatever the setting.
        if "single_column_power" in checks and not checks & set(DROP_CHECKS):
            entry["suspected_leak"] = True
            leaks.append({"column": column, "metric": POWER_LABEL[task],
                          "power": scores[column], "threshold": threshold,
                          "action": entry["action"]})  # fmt: skip
        columns[column] = entry
    return {
        "target": target, "task": task, "rows": table.rows, "sample_rows": len(sample),
        "training_rows": training_rows if training_rows is not None else len(sample),
        "power_metric": power.METRIC[task],
        "thresholds": settings.model_dump(exclude={"notebook", "sample_rows", "seed"}),
        "drop": [c for c, e in columns.items() if e["action"] == "drop"],
        "flag": [c for c, e in columns.items() if e["action"] == "flag"],
        "suspected_leaks": sorted(leaks, key=lambda leak: -leak["power"]),
        # Columns past tally's exact limit: their distinct counts and top values estimated.
        "estimated": {c: e for c, e in table.estimated().items() if c in facts},
        "columns": columns,
    }  # fmt: skip


def lineage_leaks(target: str, lineage: Mapping[str, Any]) -> dict[str, str]:
    """Columns the target is computed from, directly or not, and columns derived from them."""
    entry = lineage.get(target)
    expression = entry.get("expression", "") if isinstance(entry, Mapping) else ""
    sources = _ancestors(target, lineage)
    leaks = {
        column: f"the target {target!r} is computed from it ({target} = {expression})"
        for column in sorted(sources)
    }
    for column in lineage:
        shared = sources & _ancestors(column, lineage)
        if column != target and column not in leaks and shared:
            leaks[column] = f"derived from {sorted(shared)}, which the target is computed from"
    return leaks


def known_after(declared: Iterable[str], lineage: Mapping[str, Any], target: str) -> dict[str, str]:
    """The spec's known-after-prediction columns and every column derived from them."""
    declared = set(declared) - {target}
    found = {c: "the spec lists it as known only after the moment of prediction" for c in declared}
    for column in lineage:
        shared = declared & _ancestors(column, lineage)
        if column != target and column not in found and shared:
            found[column] = f"derived from {sorted(shared)}, known only after prediction"
    return found


def data_checks(
    fact: Facts, settings: ExploreSpec, *, code: dict | None, name: str = ""
) -> list[tuple[str, str]]:
    """(check, message) for what the column's own values say; the first drop reason wins.

    Identifiers: text distinct in UNIQUE_SHARE of rows (or TEXT_ID_SHARE: very high
    cardinality); integers distinct in UNIQUE_SHARE of rows, or only rising (falling) and
    distinct in MONOTONIC_SHARE, that also fill their range (fills_its_range) or are named
    as an identifier. Numbers with a fractional part are never identifiers.
    """
    present = fact.rows - fact.missing
    missing_share = fact.missing / fact.rows if fact.rows else 1.0
    if missing_share >= settings.mostly_missing:
        limit = f"{settings.mostly_missing:.0%}"
        return [("mostly_missing", f"missing in {missing_share:.1%} of rows (at least {limit})")]
    if fact.distinct <= 1:
        return [("constant", f"a single value ({fact.top!r}) in every row that has one")]
    top_share = fact.top_count / (fact.top_rows or present)
    distinct_share = fact.distinct / present
    about = "about " if fact.estimated else ""  # a HyperLogLog estimate (tally.py)
    share, count = f"{about}{distinct_share:.0%}", f"{about}{fact.distinct:,}"
    sampled = f" in a sample of {fact.top_rows:,}" if fact.top_rows else ""
    row_number = fact.integer and (fact.dense or named_as_identifier(name))
    why_number = "they fill their range" if fact.dense else "its name says identifier"
    if fact.kind == "string" and distinct_share >= UNIQUE_SHARE:
        message = f"text distinct in {share} of rows: it names rows, not traits"
        return [("unique_per_row", message)]
    if row_number and distinct_share >= UNIQUE_SHARE:
        message = f"integers distinct in {share} of rows and {why_number}: row ids"
        return [("unique_per_row", message)]
    if row_number and fact.monotonic:
        message = f"rises or falls with every row, distinct in {share}: a counter"
        return [("monotonic", message)]
    if fact.kind == "string" and distinct_share >= TEXT_ID_SHARE:
        message = f"text with {count} distinct values ({distinct_share:.0%} of rows)"
        return [("very_high_cardinality", message + ": an identifier")]
    found = []
    if top_share >= settings.near_constant:
        limit = f"{settings.near_constant:.1%}"
        message = (f"one value ({fact.top!r}) covers {top_share:.2%} of its rows{sampled} "
                   f"(at least {limit})")  # fmt: skip
        found.append(("near_constant", message + "; kept, as the rare values may matter"))
    if fact.integer and distinct_share >= UNIQUE_SHARE:
        message = (f"whole numbers distinct in {share} of rows, spread over their range "
                   "like a quantity: kept as a number, not an identifier")  # fmt: skip
        found.append(("distinct_numbers", message))
    if code is not None:
        scores = f"{code['identity']:.3f} vs {code['order']:.3f}"
        message = f"integers whose identity predicts the target better than their order ({scores})"
        found.append(("integer_code", message + ": a code, not a quantity; used as a category"))
    if (fact.kind in ("string", "boolean") or code) and fact.distinct > settings.high_cardinality:
        message = f"a categorical with {count} distinct values, likely an identifier"
        encoding = "features encodes it by target (cross-fitted) or hashing, not a code per value"
        found.append(("high_cardinality", f"{message}: {encoding}"))
    return found


def integer_codes(
    sample: pd.DataFrame, target: str, task: str, facts: Mapping[str, Facts],
    settings: ExploreSpec,
) -> dict[str, dict]:  # fmt: skip
    """Integer columns of high cardinality that behave as codes: column -> both scores."""
    y = power.target_matrix(sample[target], task)
    if y is None:
        return {}
    folds = power.folds_of(len(sample), settings.seed)
    chance = 0.0 if task == "regression" else 0.5
    found = {}
    for column, fact in facts.items():
        if column == target or not fact.integer or fact.kind != "numeric":
            continue
        if fact.distinct <= settings.high_cardinality:
            continue
        values = sample[column]
        identity = power.score(power.value_keys(values), y, task, folds)
        order = power.score(power.ordered_keys(values), y, task, folds)
        excess = identity - chance
        if excess >= MIN_CODE_EXCESS and excess >= CODE_MARGIN * max(order - chance, 0.0):
            found[column] = {"identity": round(identity, 4), "order": round(order, 4)}
    return found


def _ancestors(column: str, lineage: Mapping[str, Any]) -> set[str]:
    """Every column `column` is computed from, following derived columns back."""
    found: set[str] = set()
    frontier = _sources(lineage, column)
    while frontier:
        source = frontier.pop()
        if source not in found and source != column:
            found.add(source)
            frontier.extend(_sources(lineage, source))
    return found


def _sources(lineage: Mapping[str, Any], column: str) -> list[str]:
    entry = lineage.get(column)
    return list(entry.get("derived_from", [])) if isinstance(entry, Mapping) else []
