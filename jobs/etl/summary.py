"""What the engines report: per-step counts and per-slice summaries of the output, both of
which add up across slices and partitions, so either engine reports the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch_jobs.etl import row_hash
from mlbatch_jobs.etl.coercion import Coercion
from mlbatch_jobs.etl.steps import Counts, Step
from mlbatch_jobs.etl.validation import Partial, Validator, merge_partials

TARGET_VALUES = 1001  # enough distinct target values to tell a task apart (tasks.py caps at 50)
HASH = "__hash"


@dataclass
class Summary:
    """One slice of the output, summed: rows, nulls per column, rule counts, target values."""

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    checks: Partial = field(default_factory=dict)
    target_values: pa.Array | None = None
    smallest_hashes: np.ndarray | None = None  # when sampling: the candidates for the sample


@dataclass
class Outcome:
    """What an engine did: counts per step, rows read and coerced, and the output summary."""

    steps: list[Counts]
    rows_read: int
    coercion: Coercion
    summary: Summary
    duplicates: dict[int, tuple] = field(default_factory=dict)  # unique rule -> (rows, keys)


def run_steps(table: pa.Table, steps: list[Step]) -> tuple[pa.Table, list[Counts]]:
    """Apply steps in order, counting rows in and out of each."""
    counts = []
    for step in steps:
        rows_in = table.num_rows
        table, extra = step.apply(table)
        counts.append({"rows_in": rows_in, "rows_out": table.num_rows, **extra})
    return table, counts


def add_counts(runs: list[list[Counts]]) -> list[Counts]:
    """Per-step counts of several slices, added up."""
    total: list[Counts] = [{} for _ in runs[0]] if runs else []
    for run in runs:
        for step_total, counts in zip(total, run, strict=True):
            for key, value in counts.items():
                step_total[key] = step_total.get(key, 0) + value
    return total


def add_coercions(coercions: list[Coercion], policy: str) -> Coercion:
    total = Coercion(policy=policy)
    for coercion in coercions:
        for column, count in coercion.bad.items():
            total.bad[column] = total.bad.get(column, 0) + count
        total.rows_dropped += coercion.rows_dropped
    return total


def summarize(
    table: pa.Table, *, validator: Validator, target: str | None, sample: int | None, seed: int
) -> tuple[pa.Table, Summary]:
    """Summarize one slice of the output; when sampling, each row gets its hash column."""
    summary = Summary(
        rows=table.num_rows,
        nulls={name: table[name].null_count for name in table.column_names},
        checks=validator.check_rows(table),
        target_values=pc.unique(table[target]).slice(0, TARGET_VALUES) if target else None,
    )
    if sample:
        hashes = row_hashes(table, seed)
        summary.smallest_hashes = np.sort(hashes)[:sample]
        table = table.append_column(HASH, pa.array(hashes))
    return table, summary


def merge_summaries(summaries: list[Summary], *, sample: int | None) -> Summary:
    merged = Summary(checks=merge_partials([s.checks for s in summaries]))
    values = []
    for summary in summaries:
        merged.rows += summary.rows
        for name, count in summary.nulls.items():
            merged.nulls[name] = merged.nulls.get(name, 0) + count
        if summary.target_values is not None:
            values.append(summary.target_values)
    if values:
        merged.target_values = pc.unique(pa.chunked_array(values)).slice(0, TARGET_VALUES)
    if sample:
        candidates = np.concatenate([s.smallest_hashes for s in summaries] or [np.array([])])
        merged.smallest_hashes = np.sort(candidates)[:sample]
    return merged


def row_hashes(table: pa.Table, seed: int) -> np.ndarray:
    """A hash of each row's content: the sample is the rows with the smallest hashes, the
    same rows whichever engine or partitioning produced the table."""
    return row_hash.row_hashes(table, key=f"{seed:016d}"[-16:])
