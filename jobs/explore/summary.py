"""The numbers of the explore report, computed with pyarrow on the whole table.

Counts, missing values, distinct values, extremes, top values and the target's balance
are exact over every row. Only the distribution histograms of numeric columns come from
a random sample of at most `SAMPLE_ROWS` rows: they are pictures, and a sample of that
size draws the same picture at a fraction of the cost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput

TASKS = ("binary", "multiclass", "regression")
SAMPLE_ROWS = 200_000  # the most rows the distribution histograms look at
SAMPLE_SEED = 0
TARGET_BINS = 40  # bins of a regression target's histogram (every row)
DISTRIBUTION_BINS = 30  # bins of each numeric column's histogram (the sample)
DISTRIBUTION_COLUMNS = 24  # numeric columns drawn, in table order
CATEGORY_COLUMNS = 18  # categorical columns whose top values are drawn
TOP_VALUES = 10  # values listed per categorical column
MAX_TEXT = 200  # a longer top value or class label is cut in summary.json

ROLE_TARGET = "target"
ROLE_KNOWN_AFTER = "known after prediction"
ROLE_ID = "id"
ROLE_FEATURE = "feature"


def summarize(
    data: pa.Table | pd.DataFrame,
    *,
    target: str,
    task: str,
    known_after_prediction: Iterable[str] = (),
    id_columns: Iterable[str] = (),
    dtypes: Mapping[str, str] | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
) -> dict[str, Any]:
    """Everything summary.json holds, for a table and its target.

    Args:
        dtypes: column -> dtype as etl's schema.json names it; the Arrow type otherwise.
    """
    table = as_table(data)
    names = table.column_names
    if task not in TASKS:
        raise BadInput(f"task {task!r} is not one of {', '.join(TASKS)}")
    if target not in names:
        raise BadInput(f"target {target!r} is not a column of etl's table")
    if table.num_rows == 0:
        raise BadInput("etl's table has no rows: nothing to explore")
    known_after = [c for c in dict.fromkeys(known_after_prediction) if c != target]
    ids = [c for c in dict.fromkeys(id_columns) if c != target]
    roles = {name: ROLE_FEATURE for name in names}
    roles.update({c: ROLE_ID for c in ids if c in roles})
    roles.update({c: ROLE_KNOWN_AFTER for c in known_after if c in roles})
    roles[target] = ROLE_TARGET
    dtypes = dtypes or {}

    columns = [
        summarize_column(
            table.column(i),
            name=name,
            role=roles[name],
            dtype=dtypes.get(name) or str(table.schema.field(i).type),
        )  # fmt: skip
        for i, name in enumerate(names)
    ]
    missing_cells = sum(c["missing"] for c in columns)
    sample = sample_table(table, sample_rows, seed=seed)
    numeric = [c for c in columns if c["kind"] == "numeric"]
    drawn = [  # candidate features first, then what is known only after prediction
        c["name"] for role in (ROLE_FEATURE, ROLE_KNOWN_AFTER) for c in numeric if c["role"] == role
    ][:DISTRIBUTION_COLUMNS]
    categorical = [
        c["name"] for c in columns
        if c["kind"] in ("string", "boolean") and c["role"] in (ROLE_FEATURE, ROLE_KNOWN_AFTER)
    ][:CATEGORY_COLUMNS]  # fmt: skip
    return {
        "rows": table.num_rows,
        "columns": table.num_columns,
        "missing_cells": missing_cells,
        "missing_share": missing_cells / (table.num_rows * table.num_columns),
        "target": summarize_target(table.column(target), name=target, task=task),
        "not_used_as_features": {
            "known_after_prediction": [c for c in known_after if c in roles],
            "id_columns": [c for c in ids if c in roles],
            "not_in_table": [c for c in [*known_after, *ids] if c not in roles],
        },
        "sample": {"rows": sample.num_rows, "seed": seed},
        "distributions": {name: histogram(sample.column(name)) for name in drawn},
        "top_categories": {name: top_values(table.column(name)) for name in categorical},
        "column_summaries": columns,
    }


def metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers for the stage's manifest."""
    result = {
        "rows": summary["rows"],
        "columns": summary["columns"],
        "missing_share": summary["missing_share"],
    }
    if summary["target"]["task"] != "regression":
        result["minority_class_share"] = summary["target"]["minority_class_share"]
    return result


def as_table(data: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    return data


def column_kind(type_: pa.DataType) -> str:
    """numeric, boolean, datetime, string or other: what the report can say about it."""
    if pa.types.is_dictionary(type_):
        return column_kind(type_.value_type)
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        return "datetime"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or _is_string_view(type_):
        return "string"
    return "other"


def summarize_column(column: pa.ChunkedArray, *, name: str, dtype: str, role: str) -> dict:
    """Missing and distinct counts; min, max and mean, or the most frequent value."""
    column = clean(column)
    kind = column_kind(column.type)
    entry: dict[str, Any] = {
        "name": name, "dtype": dtype, "kind": kind, "role": role,
        "missing": column.null_count,
        "missing_share": column.null_count / len(column) if len(column) else 0.0,
        "distinct": None, "min": None, "max": None, "mean": None,
        "top": None, "top_count": None,
    }  # fmt: skip
    try:
        entry["distinct"] = pc.count_distinct(column, mode="only_valid").as_py()
    except pa.ArrowNotImplementedError:  # nested types: no distinct count
        pass
    if kind in ("numeric", "datetime"):
        extremes = pc.min_max(column)
        entry["min"] = json_value(extremes["min"].as_py())
        entry["max"] = json_value(extremes["max"].as_py())
        if kind == "numeric":
            entry["mean"] = json_value(pc.mean(column).as_py())
    elif kind in ("string", "boolean"):
        counts = value_counts(column)
        if counts:
            entry["top"], entry["top_count"] = counts[0]
    return entry


def summarize_target(column: pa.ChunkedArray, *, name: str, task: str) -> dict:
    """Class counts and shares (classification) or a histogram and moments (regression)."""
    column = clean(column)
    entry: dict[str, Any] = {"name": name, "task": task, "missing": column.null_count}
    if task != "regression":
        counts = value_counts(column)
        labelled = sum(count for _, count in counts)
        entry["classes"] = [
            {"value": value, "count": count, "share": count / labelled} for value, count in counts
        ]
        entry["minority_class_share"] = counts[-1][1] / labelled if counts else None
        return entry
    if column_kind(column.type) != "numeric":
        raise BadInput(f"regression target {name!r} is not numeric ({column.type})")
    values = _finite(column)
    empty = values.size == 0
    entry.update(
        min=None if empty else float(values.min()),
        max=None if empty else float(values.max()),
        mean=None if empty else float(values.mean()),
        std=None if empty else float(values.std()),
        median=None if empty else float(np.median(values)),
        histogram=histogram(column, bins=TARGET_BINS),
    )
    return entry


def value_counts(column: pa.ChunkedArray) -> list[tuple[Any, int]]:
    """(value, count) pairs of the non-missing values, most frequent first, ties by value."""
    counts = pc.value_counts(pc.drop_null(column))
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    ranked = sorted(pairs, key=lambda pair: (-pair[1], str(pair[0])))
    return [(json_value(value), count) for value, count in ranked]


def top_values(column: pa.ChunkedArray, count: int = TOP_VALUES) -> list[dict[str, Any]]:
    """The most frequent values with their counts and shares of the rows that have one."""
    counts = value_counts(clean(column))
    present = sum(n for _, n in counts)
    return [{"value": v, "count": n, "share": n / present} for v, n in counts[:count]]


def histogram(column: pa.ChunkedArray, *, bins: int = DISTRIBUTION_BINS) -> dict[str, list]:
    """Bin edges and counts of a numeric column's finite values (one bin per integer when
    an integer column spans fewer values than `bins`)."""
    column = clean(column)
    values = _finite(column)
    if values.size == 0:
        return {"edges": [], "counts": []}
    low, high = values.min(), values.max()
    if pa.types.is_integer(column.type) and high - low < bins:
        bins = np.arange(low - 0.5, high + 1.5)  # one bar per value, no empty gaps between
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def sample_table(
    table: pa.Table, max_rows: int = SAMPLE_ROWS, *, seed: int = SAMPLE_SEED
) -> pa.Table:
    """At most max_rows rows drawn at random without replacement, in table order."""
    if table.num_rows <= max_rows:
        return table
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(table.num_rows, size=max_rows, replace=False))
    return table.take(pa.array(indices))


def json_value(value: Any) -> Any:
    """A value summary.json can hold: strict JSON numbers, ISO dates, cut long strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf / -inf; NaN never gets here (_clean makes it missing)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    if isinstance(value, bytes | dt.timedelta):
        return str(value)
    return value


def clean(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Categories decoded, and NaN counted as missing: pandas writes either for 'no value'."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    return column


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    values = pc.drop_null(column).cast(pa.float64()).to_numpy()
    return values[np.isfinite(values)]


def _is_string_view(type_: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check and check(type_))
