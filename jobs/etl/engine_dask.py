"""The Dask engine, for inputs larger than memory: the main source is read in blocks, each
block runs the same step kernels as the pandas engine in its own task, dedupe shuffles
on its keys (dask.dataframe, P2P), and every final partition is written as an Arrow file
(a part) that the stage streams into table.parquet. The joined sources go to every worker
once. Without a shuffle, one task reads, transforms, summarizes and writes its block a
slice at a time, so a worker's memory is bounded by a slice (sized from its memory
limit), not by the block (a Parquet row group of any size) or the table."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch_jobs.etl import dask_unique
from mlbatch_jobs.etl.dask_failures import explain_lost_workers
from mlbatch_jobs.etl.output import PartWriter
from mlbatch_jobs.etl.plan import Plan
from mlbatch_jobs.etl.reading import ORDER
from mlbatch_jobs.etl.summary import (
    Outcome,
    add_coercions,
    add_counts,
    merge_summaries,
    run_steps,
    summarize,
)

# A partition (input bytes per block, output bytes per slice) is at most this share of a
# worker's memory limit: a worker holds a block's compressed pages, a slice and the copies
# its steps make (about 3x), the summaries, and Python's own ~150 MiB, and pauses at 80 %.
WORKER_SHARE = 32
MIN_PARTITION_BYTES = 1 << 20
MIN_SLICE_ROWS = 1024
MEMORY_LOG_ENV = "MLBATCH_DASK_MEMORY_LOG"
TEXT_BYTES = 24  # a text value's guessed size in Arrow: offsets plus a short string


def run(
    plan: Plan, client, *, partition_bytes: int, parts_uri: str, sample: int | None, seed: int
) -> tuple[list[tuple], Outcome]:
    """The output as Arrow parts ((filesystem, path), in order) and what each step did."""
    memory_limit = worker_memory_limit(client)
    partition_bytes = sized_partition(partition_bytes, memory_limit)
    slice_rows = max(MIN_SLICE_ROWS, partition_bytes // row_bytes(plan.output))
    print(f"dask: partitions of {partition_bytes / 2**20:,.1f} MiB of input, slices of "
          f"{slice_rows:,} rows")  # fmt: skip
    lost = explain_lost_workers(
        client, partition_mb=partition_bytes / 2**20, memory_limit=memory_limit
    )
    with lost, _memory_log():
        return _run(plan, client, partition_bytes=partition_bytes, slice_rows=slice_rows,
                    parts_uri=parts_uri, sample=sample, seed=seed)  # fmt: skip


@contextmanager
def _memory_log() -> Iterator[None]:
    """The cluster's memory over time (Dask's MemorySampler: the workers' process memory,
    summed, twice a second) as a CSV file at MEMORY_LOG_ENV, for finding where the
    workers' memory goes; nothing without it."""
    path = os.environ.get(MEMORY_LOG_ENV)
    if not path:
        yield
        return
    from distributed.diagnostics import MemorySampler

    sampler = MemorySampler()
    try:
        with sampler.sample("etl", measure="process", interval=0.5):
            yield
    finally:
        sampler.to_pandas().to_csv(path)
        print(f"dask: memory log in {path}")


def worker_memory_limit(client) -> int | None:
    """The smallest memory limit among the workers (None: no limit)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return min((limit for limit in limits if limit), default=None)


def sized_partition(partition_bytes: int, memory_limit: int | None) -> int:
    """etl.dask.partition_mb, at most a WORKER_SHARE of a worker's memory limit."""
    if memory_limit is None:
        return partition_bytes
    return min(partition_bytes, max(MIN_PARTITION_BYTES, memory_limit // WORKER_SHARE))


def row_bytes(schema: pa.Schema) -> int:
    """About how many bytes one output row takes in Arrow memory (text counted at
    TEXT_BYTES a value): what a slice of rows is sized by."""
    total = 0
    for column in schema:
        try:
            total += max(column.type.bit_width // 8, 1)
        except ValueError:  # no fixed width: text, binary, lists
            total += TEXT_BYTES
    return max(total, 1)


def _run(
    plan: Plan, client, *, partition_bytes: int, slice_rows: int, parts_uri: str,
    sample: int | None, seed: int,
) -> tuple[list[tuple], Outcome]:  # fmt: skip
    import dask
    import dask.dataframe as dd
    from dask import delayed

    # Shuffles of ArrowDtype frames: keep Arrow strings as they are. P2P shuffles (Dask's
    # default on a cluster, named so it stays) spill to the workers' disks.
    dask.config.set({"dataframe.convert-string": False, "dataframe.shuffle.method": "p2p"})
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    blocks = plan.main.blocks(partition_bytes)
    if not blocks:
        raise BadInput(f"source {plan.main.name}: no rows in {plan.main.files[0].uri}")
    filesystem, root = storage.arrow_filesystem(parts_uri)
    filesystem.create_dir(root, recursive=True)
    parts = [(filesystem, f"{root}/part-{i:05d}.arrow") for i in range(len(blocks))]
    unique = plan.validator.unique_rules()
    finish = {"validator": plan.validator, "target": plan.target, "sample": sample,
              "seed": seed, "unique": [columns for _, columns in unique],
              "compress": storage.local_path(parts_uri) is None, "slice_rows": slice_rows,
              "buckets": len(blocks)}  # fmt: skip
    steps = client.scatter(plan.steps, broadcast=True, hash=False)
    reader = client.scatter(plan.main, broadcast=True, hash=False)
    segments = _segments(plan.steps)
    last = len(segments) == 1
    tasks = [
        delayed(_task)(
            block, steps, *segments[0], reader=reader, part=part if last else None, finish=finish
        )  # fmt: skip
        for block, part in zip(blocks, parts, strict=True)
    ]
    reads = tasks
    counts = [[delayed(_get)(t, "counts") for t in tasks]]
    for number, (start, stop) in enumerate(segments[1:], 2):
        last = number == len(segments)
        meta = _to_pandas((plan.schemas[start - 1] if start else plan.main.schema()).empty_table())
        frames = [delayed(_get)(t, "frame") for t in tasks]
        shuffled = dd.from_delayed(frames, meta=meta, verify_meta=False).shuffle(
            on=plan.steps[start].shuffle_keys, npartitions=len(blocks)
        )
        tasks = [
            delayed(_task)(frame, steps, start, stop, part=part if last else None, finish=finish)
            for frame, part in zip(shuffled.to_delayed(), parts, strict=True)
        ]
        counts.append([delayed(_get)(t, "counts") for t in tasks])
    # Each rule's hashes, bucketed in files by the tasks, once every task has written.
    written = delayed(len)([delayed(_get)(t, "counts") for t in tasks])
    repeated = [
        delayed(np.concatenate)([
            delayed(dask_unique.repeated_in_bucket)(
                [(fs, _hash_path(path, k)) for fs, path in parts], bucket, written
            )
            for bucket in range(len(blocks))
        ])
        for k in range(len(unique))
    ]  # fmt: skip
    summaries, counts, coercions, rows_read, repeated = dask.compute(
        [delayed(_get)(t, "summary") for t in tasks], counts,
        [delayed(_get)(t, "coercion") for t in reads],
        [delayed(_get)(t, "rows_read") for t in reads], repeated,
    )  # fmt: skip
    if sum(rows_read) == 0:
        raise BadInput(f"source {plan.main.name}: no rows in {plan.main.files[0].uri}")
    outcome = Outcome(
        steps=[step for segment in counts for step in add_counts(segment)],
        rows_read=sum(rows_read),
        coercion=add_coercions(coercions, plan.main.source.on_error),
        summary=merge_summaries(summaries, sample=sample),
        duplicates={
            index: dask_unique.exact_duplicates(parts, columns, hashes)
            for (index, columns), hashes in zip(unique, repeated, strict=True)
        },
    )
    return parts, outcome


def _segments(steps: list) -> list[tuple[int, int]]:
    """(start, stop) of each run of steps a task does: until the first step with shuffle
    keys, then from each such step to the next."""
    cuts = [i for i, step in enumerate(steps) if step.shuffle_keys is not None]
    bounds = [0, *cuts, len(steps)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _task(source, steps, start: int, stop: int, *, part, finish: dict, reader=None) -> dict:
    """Run steps[start:stop] on a block (read here) or a shuffled frame; with a part, write
    and summarize the result, else hand the frame on. A block is read, transformed and
    written a slice at a time, so a worker holds one slice of output, not its block."""
    _system_allocator()
    result: dict = {"counts": [], "coercion": [], "summary": [], "hashes": [], "frame": [],
                    "rows_read": 0}  # fmt: skip
    if reader is not None:
        slices = reader.read_slices(source, finish["slice_rows"])
    else:
        slices = ((pa.Table.from_pandas(source, preserve_index=False), None),)
    writer = None if part is None else PartWriter(*part, compress=finish["compress"])
    try:
        for table, coercion in slices:
            if coercion is not None:
                result["coercion"].append(coercion)
                result["rows_read"] += table.num_rows + coercion.rows_dropped
            table, counts = run_steps(table, steps[start:stop])
            result["counts"].append(counts)
            if writer is None:
                result["frame"].append(table)
                continue
            if ORDER in table.column_names:
                table = table.drop_columns([ORDER])
            table, summary = summarize(
                table, validator=finish["validator"], target=finish["target"],
                sample=finish["sample"], seed=finish["seed"],
            )  # fmt: skip
            writer.write(table)
            result["summary"].append(summary)
            result["hashes"].append(
                [dask_unique.key_hashes(table, columns)[dask_unique.HASH].to_numpy()
                 for columns in finish["unique"]]
            )  # fmt: skip
    finally:
        if writer is not None:
            writer.close()
    for k in range(len(finish["unique"]) if part is not None else 0):
        hashes = np.concatenate([per_rule[k] for per_rule in result["hashes"]])
        dask_unique.write_hashes(hashes, part[0], _hash_path(part[1], k),
                                 buckets=finish["buckets"])  # fmt: skip
    return _combine(result, finish, rows_read=reader is not None)


def _system_allocator() -> None:
    """Arrow's default allocator (mimalloc) keeps what a worker thread freed: measured in a
    `dask worker`, a 1M-row block in 40k-row slices peaked 139 MiB above the idle worker
    and stayed there, against 68 MiB, returned after, with the system allocator (which
    the nanny's MALLOC_TRIM_THRESHOLD_ makes give memory back). Workers run etl tasks only."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _combine(result: dict, finish: dict, *, rows_read: bool) -> dict:
    """One task's slices as one result, as if the block had been done whole."""
    combined = {"counts": add_counts(result["counts"])}
    if result["frame"]:
        combined["frame"] = _to_pandas(pa.concat_tables(result["frame"]))
    if result["summary"]:
        combined["summary"] = merge_summaries(result["summary"], sample=finish["sample"])
    if rows_read:
        policy = result["coercion"][0].policy
        combined["coercion"] = add_coercions(result["coercion"], policy)
        combined["rows_read"] = result["rows_read"]
    return combined


def _hash_path(part_path: str, rule: int) -> str:
    """Where a part's key hashes for one unique rule go: beside it."""
    folder, name = part_path.rsplit("/", 1)
    return f"{folder}/hashes-{rule}-{name.removeprefix('part-')}"


def _get(result: dict, key: str, index: int | None = None):
    return result[key] if index is None else result[key][index]


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: no copies, and the types come back unchanged."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)
