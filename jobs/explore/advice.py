"""Column advice: which columns to drop or watch, each with its reasons (advice.json).

Every check reads the data or the spec, never a column name: leaks by the target's
lineage (etl's schema.json), by the spec's known_after_prediction list and by a
column's own predictive power; identifiers (declared, unique per row, monotonic, or text
of very high cardinality); constant, near-constant and mostly-missing columns; and
categoricals of high cardinality, integer codes among them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.spec import ExploreSpec
from mlbatch_jobs.explore import power
from mlbatch_jobs.explore.summary import clean, column_kind, json_value

UNIQUE_SHARE = 0.95  # distinct in this share of rows: the column identifies rows
TEXT_ID_SHARE = 0.5  # text distinct in this share of rows: an identifier, not a category
MONOTONIC_SHARE = 0.5  # a monotonic integer column this distinct is a sequence
# An integer column is a code (flight numbers, zip codes) when its values' identity
# predicts the target clearly better than their order does: by this factor, and by at
# least MIN_CODE_EXCESS above chance. A quantity's order carries most of what it knows.
CODE_MARGIN = 1.25
MIN_CODE_EXCESS = 0.02
DROP_CHECKS = (
    "target_lineage", "known_after_prediction", "declared_identifier", "single_column_power",
    "mostly_missing", "constant", "near_constant", "unique_per_row", "monotonic",
    "very_high_cardinality",
)  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What the checks need to know about one column, exact over every row."""

    kind: str  # numeric, boolean, datetime, string or other (summary.column_kind)
    rows: int
    missing: int
    distinct: int
    top: Any  # the most frequent value
    top_count: int
    integer: bool  # integer dtype, or floats that are all whole numbers
    monotonic: bool


def column_facts(column: pa.ChunkedArray) -> Facts:
    column = clean(column)
    kind = column_kind(column.type)
    present = pc.drop_null(column)
    counts = pc.value_counts(present) if len(present) else None
    top, top_count = None, 0
    if counts is not None and len(counts):
        best = int(np.argmax(counts.field("counts").to_numpy()))
        top, top_count = counts.field("values")[best].as_py(), counts.field("counts")[best].as_py()
    integer = pa.types.is_integer(column.type)
    if kind == "numeric" and not integer and len(present):
        values = present.cast(pa.float64()).to_numpy()
        integer = bool(np.all(np.isfinite(values) & (values == np.round(values))))
    distinct = len(counts) if counts is not None else 0
    monotonic = False
    if integer and distinct > MONOTONIC_SHARE * max(len(present), 1):
        steps = np.diff(present.cast(pa.int64()).to_numpy())
        monotonic = bool(len(steps) and ((steps >= 0).all() or (steps <= 0).all()))
    return Facts(
        kind=kind, rows=len(column), missing=column.null_count, distinct=distinct,
        top=json_value(top), top_count=top_count, integer=integer, monotonic=monotonic,
    )  # fmt: skip


def advise(
    table: pa.Table,
    sample: pd.DataFrame,
    *,
    target: str,
    task: str,
    lineage: Mapping[str, Any],
    known_after_prediction: Iterable[str],
    id_columns: Iterable[str],
    settings: ExploreSpec,
) -> dict[str, Any]:
    """advice.json: per column of the sample (the columns explore can analyse) an action
    (drop, flag or keep) with its reasons."""
    facts = {name: column_facts(table.column(name)) for name in sample.columns}
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
    for column, value in scores.items():
        if value > threshold:
            add(column, "single_column_power",
                f"alone it predicts the target with {metric} {value:.3f} (cross-fitted; above "
                f"{threshold}): a suspected leak")  # fmt: skip
    for column, message in known_after(known_after_prediction, lineage, target).items():
        add(column, "known_after_prediction", message)
    for column in id_columns:
        add(column, "declared_identifier", "the spec lists it in id_columns")
    for column, fact in facts.items():
        for check, message in data_checks(fact, settings, code=codes.get(column)):
            add(column, check, message)

    columns = {}
    for column, found in reasons.items():
        dropped = any(r["check"] in DROP_CHECKS for r in found)
        entry: dict[str, Any] = {"action": "drop" if dropped else "flag" if found else "keep"}
        entry["reasons"] = found
        if column in scores:
            entry["power"] = scores[column]
        if column in codes:  # its power as the category it is
            entry["treat_as"], entry["power"] = "categorical", codes[column]["identity"]
        columns[column] = entry
    return {
        "target": target, "task": task, "rows": table.num_rows, "sample_rows": len(sample),
        "power_metric": power.METRIC[task],
        "thresholds": settings.model_dump(exclude={"notebook", "sample_rows", "seed"}),
        "drop": [c for c, e in columns.items() if e["action"] == "drop"],
        "flag": [c for c, e in columns.items() if e["action"] == "flag"],
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


def data_checks(fact: Facts, settings: ExploreSpec, *, code: dict | None) -> list[tuple[str, str]]:
    """(check, message) for what the column's own values say; the first drop reason wins."""
    present = fact.rows - fact.missing
    missing_share = fact.missing / fact.rows if fact.rows else 1.0
    if missing_share >= settings.mostly_missing:
        limit = f"{settings.mostly_missing:.0%}"
        return [("mostly_missing", f"missing in {missing_share:.1%} of rows (at least {limit})")]
    if fact.distinct <= 1:
        return [("constant", f"a single value ({fact.top!r}) in every row that has one")]
    top_share, distinct_share = fact.top_count / present, fact.distinct / present
    if top_share >= settings.near_constant:
        limit = f"{settings.near_constant:.1%}"
        message = f"one value ({fact.top!r}) covers {top_share:.2%} of its rows (at least {limit})"
        return [("near_constant", message)]
    if (fact.kind == "string" or fact.integer) and distinct_share >= UNIQUE_SHARE:
        message = f"a distinct value in {distinct_share:.0%} of rows: it names rows, not traits"
        return [("unique_per_row", message)]
    if fact.monotonic:
        message = f"rises or falls with every row, distinct in {distinct_share:.0%}: a counter"
        return [("monotonic", message)]
    if fact.kind == "string" and distinct_share >= TEXT_ID_SHARE:
        message = f"text with {fact.distinct:,} distinct values ({distinct_share:.0%} of rows)"
        return [("very_high_cardinality", message + ": an identifier")]
    found = []
    if code is not None:
        scores = f"{code['identity']:.3f} vs {code['order']:.3f}"
        message = f"integers whose identity predicts the target better than their order ({scores})"
        found.append(("integer_code", message + ": a code, not a quantity; used as a category"))
    if (fact.kind in ("string", "boolean") or code) and fact.distinct > settings.high_cardinality:
        message = f"a categorical with {fact.distinct:,} distinct values, likely an identifier"
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
