"""A 64-bit hash of each row's content that depends only on the row: the same whichever
slice, block or partition the row is in. It picks the sampled rows and finds repeated
keys, on both engines, so it must not change with the rows around it.

pandas' hash of an Arrow-backed column does: an int64 or bool column goes to numpy as
int64 or bool without nulls and as float or object with them, so the same value hashes
differently in a block that has a null in that column. Here each column is hashed with
its nulls filled (no nulls, one numpy type), and a null's hash is a constant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NULL = np.uint64(0x9E3779B97F4A7C15)  # a null's hash, in every column
MIX = np.uint64(0x100000001B3)  # combines the columns' hashes, in order (FNV prime)


def row_hashes(table: pa.Table, *, key: str | None = None) -> np.ndarray:
    """uint64 per row; key: 16 characters that change every hash (pandas' hash_key)."""
    options = {} if key is None else {"hash_key": key}
    combined = np.zeros(table.num_rows, dtype="uint64")
    for column in table.columns:
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if pa.types.is_nested(column.type):  # pandas hashes no lists or structs: their text
            column = pa.array([None if v is None else str(v) for v in column.to_pylist()])
        filled = column if column.null_count == 0 else _fill_nulls(column)
        series = pd.Series(filled.to_pandas(types_mapper=pd.ArrowDtype))
        hashed = pd.util.hash_pandas_object(series, index=False, **options).to_numpy()
        if column.null_count:
            hashed = np.where(column.is_valid().to_numpy(zero_copy_only=False), hashed, NULL)
        combined = combined * MIX ^ hashed
    # pandas' hash_key changes only text hashes; the seed must reorder every table.
    seed = np.uint64(0) if key is None else pd.util.hash_array(np.array([key], dtype=object))[0]
    return _finalize(combined ^ seed)


def _finalize(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _fill_nulls(column: pa.Array) -> pa.Array:
    """The column without nulls: each one replaced by a fixed value of its type (the null's
    own hash then stands in for them), or by its text for a type with no zero."""
    if pa.types.is_null(column.type):
        return pa.array(np.zeros(len(column), dtype="int8"))
    for zero in (0, False, ""):
        for through in (None, pa.int64(), pa.int32()):
            try:
                scalar = pa.scalar(zero, through or column.type)
                return pc.fill_null(column, scalar.cast(column.type) if through else scalar)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                continue
    return pa.array([str(value) for value in column.to_pylist()])
