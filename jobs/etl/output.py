"""Writing the clean table: table.parquet (always one file, what downstream reads), the
optional hive-partitioned dataset/, and schema.json."""

from __future__ import annotations

import json
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
    """Stream parts ((filesystem, path) of Arrow files) into table.parquet, one at a time.

    Args:
        hash_limit: (largest hash kept, how many rows with exactly that hash to keep) when
            sampling; the hash column is dropped.
    Returns: (rows written, nulls per column)
    """
    rows, nulls, writer = 0, {}, None
    ties_left = hash_limit[1] if hash_limit else 0
    try:
        for filesystem, path in parts:
            table = read_part(filesystem, path)
            if hash_limit is not None:
                table, ties_left = _sampled(table, hash_limit[0], ties_left)
            if writer is None:
                writer = pq.ParquetWriter(out_dir / TABLE, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
            for name in table.column_names:
                nulls[name] = nulls.get(name, 0) + table[name].null_count
    finally:
        if writer is not None:
            writer.close()
    if partition_by:
        write_dataset(ds.dataset(str(out_dir / TABLE)), out_dir, partition_by=partition_by)
    return rows, nulls


def write_part(table: pa.Table, filesystem, path: str, *, compress: bool) -> None:
    """One partition of the Dask engine's output as an Arrow file: far cheaper to write and
    read back than Parquet, which is encoded once, into table.parquet. Compressed (lz4)
    only when it goes over the network."""
    options = pa.ipc.IpcWriteOptions(compression="lz4" if compress else None)
    with (
        filesystem.open_output_stream(path) as sink,
        pa.ipc.new_file(sink, table.schema, options=options) as writer,
    ):
        writer.write_table(table)


def read_part(filesystem, path: str) -> pa.Table:
    """A part written by write_part; memory-mapped when local (no copy)."""
    if isinstance(filesystem, pafs.LocalFileSystem):
        return pa.ipc.open_file(pa.memory_map(path)).read_all()
    with filesystem.open_input_file(path) as source:
        return pa.ipc.open_file(source).read_all()


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
