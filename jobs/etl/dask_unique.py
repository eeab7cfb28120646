"""Unique rules on the Dask engine: a hash of each row's key (8 bytes a row rather than
the key columns) finds the keys that may repeat; the rows with those hashes are then read
back from the parts and checked exactly, as the pandas engine does.

The hashes never wait in a worker's memory: each task writes its block's hashes next to
its part, sorted and cut into one record batch per bucket (a range of hash values), and
one task per bucket reads that batch of every file and keeps the values seen twice. A
worker holds one block's or one bucket's hashes, however large the table."""

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


def write_hashes(hashes: np.ndarray, filesystem, path: str, *, buckets: int) -> None:
    """The hashes, sorted, as an Arrow file of `buckets` record batches, batch b holding
    the values of bucket b."""
    hashes = np.sort(hashes)
    cuts = np.searchsorted(_buckets(hashes, buckets), np.arange(buckets + 1))
    schema = pa.schema([(HASH, pa.uint64())])
    with (
        filesystem.open_output_stream(path) as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
            writer.write_batch(pa.record_batch([pa.array(hashes[start:stop])], schema=schema))


def repeated_in_bucket(files: list[tuple], bucket: int, _after=None) -> np.ndarray:
    """The values of one bucket that occur more than once across the files (_after: the
    tasks that write them, so this runs once they have)."""
    values = [_read_batch(filesystem, path, bucket) for filesystem, path in files]
    found, counts = np.unique(np.concatenate(values or [np.array([], "uint64")]),
                              return_counts=True)  # fmt: skip
    return found[counts > 1]


def _read_batch(filesystem, path: str, index: int) -> np.ndarray:
    with filesystem.open_input_file(path) as source:
        return pa.ipc.open_file(source).get_batch(index).column(0).to_numpy()


def _buckets(hashes: np.ndarray, buckets: int) -> np.ndarray:
    """Each hash's bucket: its top 32 bits scaled to [0, buckets)."""
    return ((hashes >> np.uint64(32)) * np.uint64(buckets)) >> np.uint64(32)


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
