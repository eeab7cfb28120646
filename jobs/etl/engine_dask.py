"""The Dask engine, for inputs larger than memory: the main source is read in blocks, each
block runs the same step kernels as the pandas engine in its own task, dedupe shuffles
on its keys (dask.dataframe), and every final partition is written as an Arrow file (a
part) that the stage streams into table.parquet. The joined sources go to every worker
once. Without a shuffle, one task reads, transforms, summarizes and writes its block, so
no block waits in memory between tasks."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch_jobs.etl import dask_unique
from mlbatch_jobs.etl.output import write_part
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


def run(
    plan: Plan, client, *, partition_bytes: int, parts_uri: str, sample: int | None, seed: int
) -> tuple[list[tuple], Outcome]:
    """The output as Arrow parts ((filesystem, path), in order) and what each step did."""
    import dask
    import dask.dataframe as dd
    from dask import delayed

    # Shuffles of ArrowDtype frames: keep Arrow strings as they are.
    dask.config.set({"dataframe.convert-string": False})
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
              "compress": storage.local_path(parts_uri) is None}  # fmt: skip
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
    repeated = [
        dask_unique.repeated_hashes(
            [delayed(_get)(t, "hashes", k) for t in tasks], partitions=len(blocks)
        )
        for k in range(len(unique))
    ]
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
    and summarize the result, else hand the frame on."""
    result: dict = {}
    if reader is not None:
        table, result["coercion"] = reader.read_block(source)
        result["rows_read"] = table.num_rows + result["coercion"].rows_dropped
    else:
        table = pa.Table.from_pandas(source, preserve_index=False)
    table, result["counts"] = run_steps(table, steps[start:stop])
    if part is None:
        result["frame"] = _to_pandas(table)
        return result
    if ORDER in table.column_names:
        table = table.drop_columns([ORDER])
    table, result["summary"] = summarize(
        table, validator=finish["validator"], target=finish["target"],
        sample=finish["sample"], seed=finish["seed"],
    )  # fmt: skip
    write_part(table, *part, compress=finish["compress"])
    result["hashes"] = [dask_unique.key_hashes(table, columns) for columns in finish["unique"]]
    return result


def _get(result: dict, key: str, index: int | None = None):
    return result[key] if index is None else result[key][index]


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: no copies, and the types come back unchanged."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)
