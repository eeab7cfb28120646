"""Writing the clean table: table.parquet (always one file, what downstream reads), the
optional hive-partitioned dataset/, and schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlbatch_jobs.etl.summary import HASH

TABLE = "table.parquet"
DATASET = "dataset"
ROW_GROUP_ROWS = 1 << 20
ROW_GROUP_BYTES = 128 << 20  # the Dask engine's assembly: a row group's Arrow size, at most


def write_table(
    table: pa.Table, out_dir: Path, *, partition_by: list[str], staged: Path | None = None
) -> None:
    """table.parquet (from `staged` when that file holds it already) and dataset/."""
    if staged is not None and staged.exists():
        staged.replace(out_dir / TABLE)
    else:
        write_parquet(table, out_dir / TABLE)
    if partition_by:
        write_dataset(table, out_dir, partition_by=partition_by)


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS)


def assemble_parts(
    parts: list[tuple], out_dir: Path, *, partition_by: list[str], hash_limit: tuple | None
) -> tuple[int, dict[str, int]]:
    """Stream parts ((filesystem, path) of Arrow files) into table.parquet, a slice at a
    time: this process holds at most one row group (ROW_GROUP_ROWS rows or
    ROW_GROUP_BYTES), whatever the size of a part or of the table.

    Args:
        hash_limit: (largest hash kept, how many rows with exactly that hash to keep) when
            sampling; the hash column is dropped.
    Returns: (rows written, nulls per column)
    """
    rows, nulls, writer, pending = 0, {}, None, []
    ties_left = hash_limit[1] if hash_limit else 0

    def flush() -> None:
        table = pa.concat_tables(pending)
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
        pending.clear()

    def full(adding: pa.Table) -> bool:
        rows_pending = sum(t.num_rows for t in pending)  # slices of >= 1,024 rows: few
        return bool(pending) and (rows_pending + adding.num_rows > ROW_GROUP_ROWS
                                  or sum(t.nbytes for t in pending) >= ROW_GROUP_BYTES)  # fmt: skip

    try:
        for filesystem, path in parts:
            for table in read_part_slices(filesystem, path):
                if hash_limit is not None:
                    table, ties_left = _sampled(table, hash_limit[0], ties_left)
                if writer is None:
                    writer = pq.ParquetWriter(out_dir / TABLE, table.schema)
                if full(table):
                    flush()
                pending.append(table)
                rows += table.num_rows
                for name in table.column_names:
                    nulls[name] = nulls.get(name, 0) + table[name].null_count
        if pending:
            flush()
    finally:
        if writer is not None:
            writer.close()
    if partition_by:
        write_dataset(ds.dataset(str(out_dir / TABLE)), out_dir, partition_by=partition_by)
    return rows, nulls


class PartWriter:
    """One partition of the Dask engine's output as an Arrow file, written a slice at a
    time: far cheaper to write and read back than Parquet, which is encoded once, into
    table.parquet. Compressed (lz4) only when it goes over the network."""

    def __init__(self, filesystem, path: str, *, compress: bool):
        self._filesystem, self._path, self._compress = filesystem, path, compress
        self._sink = self._writer = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            options = pa.ipc.IpcWriteOptions(compression="lz4" if self._compress else None)
            self._sink = self._filesystem.open_output_stream(self._path)
            self._writer = pa.ipc.new_file(self._sink, table.schema, options=options)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()


def read_part_slices(filesystem, path: str) -> Iterator[pa.Table]:
    """A part's record batches one at a time, each as a table; memory-mapped when local
    (no copy)."""
    if isinstance(filesystem, pafs.LocalFileSystem):
        reader = pa.ipc.open_file(pa.memory_map(path))
        for index in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(index)])
        return
    with filesystem.open_input_file(path) as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(index)])


def _sampled(table: pa.Table, largest: int, ties_left: int) -> tuple[pa.Table, int]:
    hashes = table[HASH].to_numpy()
    keep = hashes < largest
    ties = np.flatnonzero(hashes == largest)[:ties_left]
    keep[ties] = True
    return table.filter(pa.array(keep)).drop_columns([HASH]), ties_left - len(ties)


def write_dataset(data, out_dir: Path, *, partition_by: list[str]) -> None:
    """dataset/<col>=<value>/part-0.parquet; one thread, so the same input gives the same files."""
    ds.write_dataset(
        data,
        out_dir / DATASET,
        format="parquet",
        partitioning=partition_by,
        partitioning_flavor="hive",
        basename_template="part-{i}.parquet",
        existing_data_behavior="error",
        use_threads=False,
    )


def pandas_dtypes(schema: pa.Schema, nulls: dict[str, int]) -> dict[str, str]:
    """Each column's dtype as downstream sees it after `to_pandas()` (ints with nulls are
    floats there)."""
    dtypes = {}
    for column in schema:
        sample = pa.nulls(1 if nulls.get(column.name) else 0, column.type)
        dtypes[column.name] = str(sample.to_pandas().dtype)
    return dtypes


def write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
