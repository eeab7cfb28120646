"""Unique rules on the Dask engine: a hash of each row's key, shuffled alone (8 bytes a
row rather than the key columns), finds the keys that may repeat; the rows with those
hashes are then read back from the parts and checked exactly, as the pandas engine does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from mlbatch_jobs.etl.output import read_part_slices
from mlbatch_jobs.etl.row_hash import row_hashes
from mlbatch_jobs.etl.validation import duplicate_keys

HASH = "hash"


def key_hashes(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """One 64-bit hash per row of its key, the same in every process."""
    return pd.DataFrame({HASH: row_hashes(table.select(columns))})


def repeated_hashes(frames: list, *, partitions: int):
    """The hashes that occur more than once (value counts, shuffled), as one Delayed."""
    import dask.dataframe as dd
    from dask import delayed

    meta = pd.DataFrame({HASH: pd.Series([], dtype="uint64")})
    counts = dd.from_delayed(frames, meta=meta, verify_meta=False)[HASH].value_counts(
        split_out=partitions
    )
    return delayed(_index_values)(counts[counts > 1].to_delayed())


def _index_values(parts: list[pd.Series]) -> np.ndarray:
    return np.concatenate([part.index.to_numpy(dtype="uint64") for part in parts])


def exact_duplicates(parts: list[tuple], columns: list[str], repeated: np.ndarray):
    """(rows that repeat an earlier row's key, a few such keys), from the rows whose hash
    repeats: every row of a repeated key is among them, a hash collision is not counted."""
    if len(repeated) == 0:
        return 0, []
    suspects = []
    for filesystem, path in parts:
        for table in read_part_slices(filesystem, path):  # a slice at a time: bounded memory
            keys = table.select(columns)
            hashes = key_hashes(keys, columns)[HASH].to_numpy()
            suspects.append(keys.filter(pa.array(np.isin(hashes, repeated))))
    return duplicate_keys(pa.concat_tables(suspects), columns)
