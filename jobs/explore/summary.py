"""The numbers of the explore report, from a tally of every row (tally.py).

Counts, missing values, extremes, means and the target's balance are exact over every
row. Distinct counts and top values are exact too, up to tally.EXACT_DISTINCT distinct
values per column when the stage streams the table; past that the distinct count is a
HyperLogLog estimate and the top values are counted on the sample, and summary.json says
so (`estimated`, per column). The distribution histograms of numeric columns come from a
random sample of at most `sample_rows` rows: they are pictures, and a sample of that size
draws the same picture at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput
from mlbatch_jobs.explore.tally import ColumnTally, TableTally, tally_table
from mlbatch_jobs.explore.values import MAX_TEXT, clean, column_kind, json_value  # noqa: F401

TASKS = ("binary", "multiclass", "regression")
SAMPLE_ROWS = 200_000  # the most rows the distribution histograms look at
SAMPLE_SEED = 0
TARGET_BINS = 40  # bins of a regression target's histogram (every row)
DISTRIBUTION_BINS = 30  # bins of each numeric column's histogram (the sample)
DISTRIBUTION_COLUMNS = 24  # numeric columns drawn, in table order
CATEGORY_COLUMNS = 18  # categorical columns whose top values are drawn
TOP_VALUES = 10  # values listed per categorical column

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
    """Everything summary.json holds, for a table in memory and its target (every value
    counted exactly).

    Args:
        dtypes: column -> dtype as etl's schema.json names it; the Arrow type otherwise.
    """
    table = as_table(data)
    check_table(table.schema, table.num_rows, target=target, task=task)
    tally = tally_table(table, sample_table(table, sample_rows, seed=seed))
    return summarize_tally(
        tally, table.column(target), target=target, task=task,
        known_after_prediction=known_after_prediction, id_columns=id_columns, dtypes=dtypes,
        schema=table.schema, seed=seed,
    )  # fmt: skip


def summarize_tally(
    tally: TableTally,
    target_column: pa.ChunkedArray,
    *,
    target: str,
    task: str,
    schema: pa.Schema,
    known_after_prediction: Iterable[str] = (),
    id_columns: Iterable[str] = (),
    dtypes: Mapping[str, str] | None = None,
    seed: int = SAMPLE_SEED,
) -> dict[str, Any]:
    """summary.json from a table's tally, its target column (read whole) and its schema."""
    check_table(schema, tally.rows, target=target, task=task)
    names = schema.names
    known_after = [c for c in dict.fromkeys(known_after_prediction) if c != target]
    ids = [c for c in dict.fromkeys(id_columns) if c != target]
    roles = {name: ROLE_FEATURE for name in names}
    roles.update({c: ROLE_ID for c in ids if c in roles})
    roles.update({c: ROLE_KNOWN_AFTER for c in known_after if c in roles})
    roles[target] = ROLE_TARGET
    dtypes = dtypes or {}
    sample = tally.sample

    columns = [
        tallied_column(
            tally.columns[name],
            tally.sample_column(name),
            name=name,
            role=roles[name],
            dtype=dtypes.get(name) or str(schema.field(name).type),
        )  # fmt: skip
        for name in names
    ]
    missing_cells = sum(c["missing"] for c in columns)
    numeric = [c for c in columns if c["kind"] == "numeric"]
    drawn = [  # candidate features first, then what is known only after prediction
        c["name"] for role in (ROLE_FEATURE, ROLE_KNOWN_AFTER) for c in numeric if c["role"] == role
    ][:DISTRIBUTION_COLUMNS]
    categorical = [
        c["name"] for c in columns
        if c["kind"] in ("string", "boolean") and c["role"] in (ROLE_FEATURE, ROLE_KNOWN_AFTER)
    ][:CATEGORY_COLUMNS]  # fmt: skip
    return {
        "rows": tally.rows,
        "columns": len(names),
        "missing_cells": missing_cells,
        "missing_share": missing_cells / (tally.rows * len(names)),
        "target": summarize_target(target_column, name=target, task=task),
        "not_used_as_features": {
            "known_after_prediction": [c for c in known_after if c in roles],
            "id_columns": [c for c in ids if c in roles],
            "not_in_table": [c for c in [*known_after, *ids] if c not in roles],
        },
        "sample": {"rows": sample.num_rows, "seed": seed},
        # Columns with more distinct values than tally counts exactly: what is estimated.
        "estimated": tally.estimated(),
        "distributions": {name: histogram(sample.column(name)) for name in drawn},
        "top_categories": {
            name: ranked_top(tally.columns[name].value_counts(tally.sample_column(name)))
            for name in categorical
        },
        "column_summaries": columns,
    }


def check_table(schema: pa.Schema, rows: int, *, target: str, task: str) -> None:
    if task not in TASKS:
        raise BadInput(f"task {task!r} is not one of {', '.join(TASKS)}")
    if target not in schema.names:
        raise BadInput(f"target {target!r} is not a column of etl's table")
    if rows == 0:
        raise BadInput("etl's table has no rows: nothing to explore")


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


def summarize_column(column: pa.ChunkedArray, *, name: str, dtype: str, role: str) -> dict:
    """Missing and distinct counts; min, max and mean, or the most frequent value."""
    tally = ColumnTally(column.type, exact_distinct=None)
    tally.add(column)
    tally.finish()
    return tallied_column(tally, None, name=name, dtype=dtype, role=role)


def tallied_column(
    tally: ColumnTally, sample: pa.ChunkedArray | None, *, name: str, dtype: str, role: str
) -> dict:  # fmt: skip
    """A column's entry of summary.json from its tally (top values of an estimated column
    from its sample)."""
    kind = tally.kind
    entry: dict[str, Any] = {
        "name": name, "dtype": dtype, "kind": kind, "role": role,
        "missing": tally.missing,
        "missing_share": tally.missing / tally.rows if tally.rows else 0.0,
        "distinct": tally.distinct(), "min": None, "max": None, "mean": None,
        "top": None, "top_count": None,
    }  # fmt: skip
    if kind in ("numeric", "datetime"):
        entry["min"], entry["max"] = json_value(tally.low), json_value(tally.high)
        if kind == "numeric":
            entry["mean"] = json_value(tally.mean())
    elif kind in ("string", "boolean"):
        counts = ranked(tally.value_counts(sample))
        if counts:
            entry["top"], entry["top_count"] = counts[0]
    if tally.estimated:  # the distinct count is a sketch's; top and top_count, the sample's
        entry["estimated"] = {"distinct": "HyperLogLog", "top_count_sample_rows":
                              0 if sample is None else len(sample)}  # fmt: skip
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
    return ranked(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                      strict=True))  # fmt: skip


def ranked(pairs: Iterable[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """(value, count) pairs most frequent first, ties by value, values as JSON holds them."""
    ordered = sorted(pairs, key=lambda pair: (-pair[1], str(pair[0])))
    return [(json_value(value), count) for value, count in ordered]


def top_values(column: pa.ChunkedArray, count: int = TOP_VALUES) -> list[dict[str, Any]]:
    """The most frequent values with their counts and shares of the rows that have one."""
    return ranked_top(value_counts(clean(column)), count)


def ranked_top(pairs: Iterable[tuple[Any, int]], count: int = TOP_VALUES) -> list[dict]:
    counts = ranked(pairs)
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
    indices = sample_positions(table.num_rows, max_rows, seed=seed)
    return table if indices is None else table.take(pa.array(indices))


def sample_positions(rows: int, max_rows: int, *, seed: int) -> np.ndarray | None:
    """The sorted positions sample_table keeps of `rows` rows; None when it keeps all."""
    if rows <= max_rows:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=max_rows, replace=False))


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    values = pc.drop_null(column).cast(pa.float64()).to_numpy()
    return values[np.isfinite(values)]
