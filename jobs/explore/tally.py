"""Per-column facts of a table seen batch by batch, in memory that does not grow with rows.

Exact over every row, always: rows, missing values (NaN counts as missing), min, max,
mean, whether numbers are all whole, whether the present values only rise or only fall,
and the step of whole numbers (the greatest common divisor of the gaps between them).
Value counts (the distinct count, the most frequent values) are exact while a column has
at most `exact_distinct` values. Past that its counts are dropped, and then
- the distinct count is a HyperLogLog estimate over every row (sketch.py, about 0.8%
  standard error);
- the most frequent values are counted on `TableTally.sample`, a seeded random sample of
  the whole table (explore.sample_rows rows, the one the histograms draw).
`ColumnTally.estimated` names those numbers, so summary.json and advice.json can say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch_jobs.explore.sketch import STANDARD_ERROR, DistinctSketch
from mlbatch_jobs.explore.values import clean, column_kind, json_value

EXACT_DISTINCT = 100_000  # distinct values per column counted exactly when streaming
EXACT_INTEGERS = 2**53  # whole floats beyond this are not exact: no step, never monotonic
MERGE_ROWS = 65_536  # batch value counts pile up to at least this before being merged
# Whole numbers spanning fewer values than this in a batch are counted by np.bincount, an
# order of magnitude cheaper than hashing them.
BIN_RANGE = 65_536


class ColumnTally:
    """One column's facts, fed batch by batch in table order (`add`)."""

    def __init__(self, type_: pa.DataType, exact_distinct: int | None = EXACT_DISTINCT):
        self.kind = column_kind(type_)
        self.integer_type = pa.types.is_integer(type_)
        self.exact_distinct = exact_distinct
        self.rows = self.missing = self.present = 0
        self.low = self.high = None
        self.total: Any = 0  # sum of the present numbers, for the mean
        self.whole = self.kind == "numeric"  # every present number is a whole number
        self.rising = self.falling = True
        self.too_large = False  # some whole number is beyond EXACT_INTEGERS
        self.last: int | None = None
        self.reference: int | None = None
        self.step = 0  # gcd of the differences to the first value: the gcd of the gaps
        self.countable = True  # False for nested values: no value counts
        self.counts: pa.Table | None = None  # values, counts (of the present values)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.sketch: DistinctSketch | None = None

    @property
    def estimated(self) -> bool:
        """Whether the distinct count is an estimate and top values come from the sample."""
        return self.sketch is not None

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        if self.kind == "string" and pa.types.is_dictionary(column.type):
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                self._add_codes(chunk)
            return
        self._add_values(clean(column))

    def _add_codes(self, column: pa.DictionaryArray) -> None:
        """Text read dictionary-encoded (reading.py) counted on its codes, by np.bincount:
        the text of a row is never decoded nor hashed. Counts merge by value, so batches
        may bring dictionaries of their own."""
        if column.dictionary.null_count:  # a code may mean "missing": decoded instead
            self._add_values(clean(column))
            return
        self.rows += len(column)
        self.missing += column.null_count
        codes = (column.indices.drop_null() if column.null_count else column.indices).to_numpy()
        if not len(codes):
            return
        self.present += len(codes)
        counts = np.bincount(codes, minlength=len(column.dictionary))
        seen = np.flatnonzero(counts)
        values = column.dictionary.take(seen)
        counted = pa.table({"values": values, "counts": pa.array(counts[seen].astype(np.int64))})
        self._count(values, counted)

    def _add_values(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.rows += len(column)
        self.missing += column.null_count
        present = pc.drop_null(column) if column.null_count else column
        if not len(present):
            return
        self.present += len(present)
        binned = None
        if self.kind == "numeric":
            binned = self._add_numbers(present)
        elif self.kind == "datetime":
            self._extend(*_min_max(present))
        self._count(present, binned)

    def _extend(self, low: Any, high: Any) -> None:
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def _add_numbers(self, present: pa.Array | pa.ChunkedArray) -> pa.Table | None:
        """Sum, extremes, wholeness, step and direction of a batch's present numbers; and
        their value counts when np.bincount can take them (else None)."""
        self.total += pc.sum(present).as_py()  # integers: exact, as Python integers
        binnable = _binnable(present.type)
        values = np.asarray(present) if binnable else None
        if pa.types.is_float32(present.type) or pa.types.is_float64(present.type):
            # Arrow's min_max of floats costs 20 times numpy's: it minds NaN (clean() left none).
            low, high = values.min().item(), values.max().item()
            if low == 0 or high == 0:  # -0.0 or 0.0: whichever Arrow calls the extreme
                low, high = _min_max(present)
        else:
            low, high = _min_max(present)
        self._extend(low, high)
        if not self.whole or self.too_large:
            return None
        # What is still open: whole floats, the step (1 is final), the direction.
        settled = self.integer_type and self.step == 1 and not (self.rising or self.falling)
        if not settled:
            if values is None:  # decimals
                values = present.cast(pa.float64(), safe=False).to_numpy()
            if not self.integer_type:
                self.whole = bool(np.all(np.isfinite(values) & (values == np.round(values))))
                if not self.whole:
                    return None
            if max(abs(self.low), abs(self.high)) >= EXACT_INTEGERS:
                self.too_large = True
                return None
        counts = None
        if binnable and high - low < BIN_RANGE:
            counts = np.bincount(_offsets(values, low))
        if not settled:
            self._add_whole(values.astype(np.int64, copy=False), counts, int(low))
        return None if counts is None else _bin_counts(counts, values, low, high, present.type)

    def _add_whole(self, numbers: np.ndarray, counts: np.ndarray | None, low: int) -> None:
        """Step and direction of whole numbers below EXACT_INTEGERS; `counts`, when
        given, is their np.bincount from `low` (the step needs only the values seen)."""
        if self.reference is None:
            self.reference = int(numbers[0])
        if self.step != 1:
            seen = numbers if counts is None else np.flatnonzero(counts) + low
            self.step = math.gcd(self.step, int(np.gcd.reduce(np.abs(seen - self.reference))))
        if self.rising or self.falling:
            steps = np.diff(numbers if self.last is None else np.r_[self.last, numbers])
            self.rising = self.rising and bool((steps >= 0).all())
            self.falling = self.falling and bool((steps <= 0).all())
        self.last = int(numbers[-1])

    def _count(self, present: pa.Array | pa.ChunkedArray, binned: pa.Table | None) -> None:
        if not self.countable:
            return
        if self.sketch is not None:
            self.sketch.add(pc.unique(present))
            return
        if binned is None:
            try:
                found = pc.value_counts(present)
            except pa.ArrowNotImplementedError:  # nested types: no value counts
                self.countable = False
                return
            binned = pa.table([found.field("values"), found.field("counts")],
                              names=["values", "counts"])  # fmt: skip
        self.pending.append(binned)
        self.pending_rows += len(binned)
        if self.pending_rows >= max(MERGE_ROWS, len(self.counts) if self.counts else 0):
            self._merge()

    def _merge(self) -> None:
        """Batches' value counts summed, by dictionary encoding (far cheaper than a hash
        group-by here). The order of values is no fact: ties for the most frequent value
        never show (`constant` has one value, `near_constant` a share of 99.5%)."""
        if not self.pending:
            return
        parts = ([self.counts] if self.counts is not None else []) + self.pending
        values = pa.concat_arrays([v for p in parts for v in p["values"].chunks])
        counts = np.concatenate([p["counts"].to_numpy() for p in parts])
        encoded = pc.dictionary_encode(values)
        sums = np.bincount(encoded.indices.to_numpy(), weights=counts,
                           minlength=len(encoded.dictionary))  # fmt: skip
        self.counts = pa.table({"values": encoded.dictionary,
                                "counts": pa.array(sums.astype(np.int64))})  # fmt: skip
        self.pending, self.pending_rows = [], 0
        if self.exact_distinct is not None and len(self.counts) > self.exact_distinct:
            self.sketch = DistinctSketch()
            self.sketch.add(self.counts["values"])
            self.counts = None

    def finish(self) -> None:
        self._merge()

    # What the summary and the advice read, once every batch is in.

    def distinct(self) -> int | None:
        if not self.countable:
            return None
        if self.sketch is None:
            return len(self.counts) if self.counts is not None else 0
        # An estimate, within what is known for certain: more than the exact limit, at most
        # one value per present row.
        return min(self.present, max(self.exact_distinct + 1, round(self.sketch.estimate())))

    def value_counts(self, sample: pa.ChunkedArray | None = None) -> list[tuple[Any, int]]:
        """(value, count) of the present values, in no particular order: over every row,
        or, for an estimated column, over the sample's values of this column."""
        if self.sketch is not None:
            if sample is None:
                return []
            counts = pc.value_counts(pc.drop_null(clean(sample)))
            values, numbers = counts.field("values"), counts.field("counts")
        elif self.counts is not None:
            values, numbers = self.counts["values"], self.counts["counts"]
        else:
            return []
        return list(zip(values.to_pylist(), numbers.to_pylist(), strict=True))

    def mean(self) -> Any:
        if self.kind != "numeric" or not self.present:
            return None
        if isinstance(self.total, int):
            return float(self.total) / self.present
        return self.total / self.present

    def span(self) -> int | None:
        """How many of min, min + step, ..., max there are, for whole numbers; None when
        some are too large to be exact integers (or there are none)."""
        if not self.whole or self.too_large or self.low is None:
            return None
        return (int(self.high) - int(self.low)) // max(self.step, 1) + 1

    @property
    def monotonic(self) -> bool:
        return not self.too_large and (self.rising or self.falling)


@dataclass
class TableTally:
    """Every column's tally, and the seeded random sample of the whole table that counts
    the top values of columns past the exact limit (and draws the histograms)."""

    rows: int
    columns: dict[str, ColumnTally]
    sample: pa.Table
    exact_distinct: int | None

    def sample_column(self, name: str) -> pa.ChunkedArray | None:
        return self.sample.column(name) if name in self.sample.column_names else None

    def estimated(self) -> dict[str, dict[str, Any]]:
        """Per column past the exact limit, where its estimated numbers come from."""
        return {
            name: {"distinct": "HyperLogLog over every row",
                   "distinct_standard_error": round(STANDARD_ERROR, 4),
                   "top_values_sample_rows": self.sample.num_rows}
            for name, tally in self.columns.items() if tally.estimated
        }  # fmt: skip


def _min_max(present: pa.Array | pa.ChunkedArray) -> tuple[Any, Any]:
    extremes = pc.min_max(present)
    return extremes["min"].as_py(), extremes["max"].as_py()


def _offsets(values: np.ndarray, low: Any) -> np.ndarray:
    """values - low, as int64, for whole numbers less than BIN_RANGE apart: 64-bit
    integers subtract in their own type (uint64 may not fit int64), the rest in int64
    (narrower integers would wrap)."""
    if _wide_integers(values):
        return (values - values.dtype.type(low)).astype(np.int64)
    return values.astype(np.int64) - int(low)


def _bin_counts(
    counts: np.ndarray, values: np.ndarray, low: Any, high: Any, type_: pa.DataType
) -> pa.Table | None:
    """value_counts of whole numbers from their np.bincount from `low`; None for floats
    holding -0.0 (a value of its own to Arrow, as to the exact counts)."""
    if pa.types.is_floating(type_) and low <= 0 <= high and np.any(np.signbit(values[values == 0])):
        return None
    seen = np.flatnonzero(counts)
    if _wide_integers(values):  # back to _offsets' type
        numbers = pa.array(seen.astype(values.dtype) + values.dtype.type(low))
    else:
        numbers = pa.array(seen + int(low)).cast(type_)
    return pa.table({"values": numbers, "counts": pa.array(counts[seen].astype(np.int64))})


def _wide_integers(values: np.ndarray) -> bool:
    return values.dtype.kind in "iu" and values.dtype.itemsize == 8


def _binnable(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_)


def new_tallies(
    schema: pa.Schema, exact_distinct: int | None = EXACT_DISTINCT
) -> dict[str, ColumnTally]:
    return {field.name: ColumnTally(field.type, exact_distinct) for field in schema}


def add_batch(tallies: dict[str, ColumnTally], batch: pa.RecordBatch | pa.Table) -> None:
    for name, tally in tallies.items():
        tally.add(batch.column(name))


def tally_table(
    table: pa.Table, sample: pa.Table, exact_distinct: int | None = None,
    batches: Iterable[pa.RecordBatch] | None = None,
) -> TableTally:  # fmt: skip
    """The tally of a table in memory (every value counted exactly by default: the
    memory is spent already)."""
    tallies = new_tallies(table.schema, exact_distinct)
    for batch in batches if batches is not None else table.to_batches(max_chunksize=MERGE_ROWS):
        add_batch(tallies, batch)
    for tally in tallies.values():
        tally.finish()
    return TableTally(table.num_rows, tallies, sample, exact_distinct)


def top(counts: list[tuple[Any, int]]) -> tuple[Any, int]:
    """The most frequent value and its count; ties to the first by text, as the summary
    ranks them (whatever order the batches brought the values in)."""
    if not counts:
        return None, 0
    best, best_count = min(counts, key=lambda pair: (-pair[1], str(pair[0])))
    return json_value(best), best_count
