"""The Dask engine's sizes and hash buckets, without a cluster: partitions from the
workers' memory limit, slices from the output's row width, and the bucketed hash files
that find repeated keys a bucket at a time."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from mlbatch_jobs.etl import dask_unique, engine_dask


def test_partitions_are_a_share_of_the_workers_memory_limit():
    mib = 2**20
    assert engine_dask.sized_partition(64 * mib, None) == 64 * mib  # no limit: the spec's
    assert engine_dask.sized_partition(64 * mib, 300 * 10**6) == 300 * 10**6 // 32
    assert engine_dask.sized_partition(64 * mib, 64 * 2**30) == 64 * mib  # never above the spec
    assert engine_dask.sized_partition(64 * mib, 8 * mib) == mib  # a floor for tiny workers
    assert engine_dask.sized_partition(64 << 10, 8 * mib) == 64 << 10  # a smaller spec stays


def test_row_bytes_counts_fixed_widths_and_guesses_text():
    schema = pa.schema([("a", pa.int64()), ("b", pa.bool_()), ("c", pa.string()),
                        ("d", pa.timestamp("ms", tz="UTC")), ("e", pa.int32())])  # fmt: skip
    assert engine_dask.row_bytes(schema) == 8 + 1 + engine_dask.TEXT_BYTES + 8 + 4


def test_bucketed_hash_files_find_exactly_the_repeated_values(tmp_path):
    rng = np.random.default_rng(0)
    files, everything = [], []
    for index in range(3):
        hashes = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)
        if index:  # values of the first file again, and one repeated within a file
            hashes[:40] = everything[0][:40]
        hashes[-1] = hashes[-2]
        path = str(tmp_path / f"hashes-{index}.arrow")
        dask_unique.write_hashes(hashes, pafs.LocalFileSystem(), path, buckets=7)
        files.append((pafs.LocalFileSystem(), path))
        everything.append(hashes)
    found = np.sort(np.concatenate(
        [dask_unique.repeated_in_bucket(files, bucket) for bucket in range(7)]
    ))  # fmt: skip
    values, counts = np.unique(np.concatenate(everything), return_counts=True)
    assert np.array_equal(found, values[counts > 1])
    assert len(found) == 40 + 3
    reader = pa.ipc.open_file(pa.memory_map(files[0][1]))
    sizes = [reader.get_batch(b).num_rows for b in range(reader.num_record_batches)]
    assert len(sizes) == 7 and min(sizes) > 500  # the values spread over the buckets
