"""The Dask engine, for inputs larger than memory: the main source is read in blocks, each
block runs the same step kernels as the pandas engine in its own task, dedupe shuffles
on its keys (dask.dataframe), and every final partition is written as a Parquet part
that the stage streams into table.parquet. The joined sources go to every worker once."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch_jobs.etl.plan import Plan
from mlbatch_jobs.etl.reading import ORDER
from mlbatch_jobs.etl.summary import (
    Outcome,
    Summary,
    add_coercions,
    add_counts,
    merge_summaries,
    run_steps,
    summarize,
)
from mlbatch_jobs.etl.validation import duplicate_keys, smallest


def run(
    plan: Plan, client, *, partition_bytes: int, parts_uri: str, sample: int | None, seed: int
) -> tuple[list[tuple], Outcome]:
    """The output as Parquet parts ((filesystem, path) each, in order) and what each step did."""
    import dask
    import dask.dataframe as dd
    from dask import delayed

    # Shuffles of ArrowDtype frames: keep Arrow strings as they are.
    dask.config.set({"dataframe.convert-string": False})
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    blocks = plan.main.blocks(partition_bytes)
    if not blocks:
        raise BadInput(f"source {plan.main.name}: no rows in {plan.main.files[0].uri}")
    segments = _segments(plan.steps)
    steps = client.scatter(plan.steps, broadcast=True, hash=False)
    reader = client.scatter(plan.main, broadcast=True, hash=False)
    first = segments[0]
    read = [delayed(_read_and_run, nout=4)(reader, block, steps, *first) for block in blocks]
    frames = [r[0] for r in read]
    counts = [[r[1] for r in read]]
    for start, stop in segments[1:]:
        meta = _meta(plan.schemas[start - 1] if start else plan.main.schema())
        shuffled = dd.from_delayed(frames, meta=meta, verify_meta=False).shuffle(
            on=plan.steps[start].shuffle_keys, npartitions=len(frames)
        )
        done = [delayed(_run, nout=2)(part, steps, start, stop) for part in shuffled.to_delayed()]
        frames = [d[0] for d in done]
        counts.append([d[1] for d in done])
    filesystem, root = storage.arrow_filesystem(parts_uri)
    filesystem.create_dir(root, recursive=True)
    parts = [(filesystem, f"{root}/part-{i:05d}.parquet") for i in range(len(frames))]
    options = {"validator": plan.validator, "target": plan.steps[-1].target, "sample": sample,
               "seed": seed}  # fmt: skip
    summaries = [delayed(_finish)(f, part, options) for f, part in zip(frames, parts, strict=True)]
    final = dd.from_delayed(frames, meta=_meta(plan.schemas[-1]), verify_meta=False)
    duplicates = {
        index: [
            delayed(duplicate_keys)(delayed(_to_arrow)(part), columns)
            for part in final[columns].shuffle(on=columns, npartitions=len(frames)).to_delayed()
        ]
        for index, columns in plan.validator.unique_rules()
    }
    summaries, counts, coercions, rows_read, duplicates = dask.compute(
        summaries, counts, [r[2] for r in read], [r[3] for r in read], duplicates
    )
    outcome = Outcome(
        steps=[step for segment in counts for step in add_counts(segment)],
        rows_read=sum(rows_read),
        coercion=add_coercions(coercions, plan.main.source.on_error),
        summary=merge_summaries(summaries, sample=sample),
        duplicates={index: _add_duplicates(found) for index, found in duplicates.items()},
    )
    if outcome.rows_read == 0:
        raise BadInput(f"source {plan.main.name}: no rows in {plan.main.files[0].uri}")
    return parts, outcome


def _segments(steps: list) -> list[tuple[int, int]]:
    """(start, stop) of each run of steps a task does: until the first step with shuffle
    keys, then from each such step to the next."""
    cuts = [i for i, step in enumerate(steps) if step.shuffle_keys is not None]
    bounds = [0, *cuts, len(steps)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _read_and_run(reader, block, steps, start: int, stop: int):
    table, coercion = reader.read_block(block)
    rows_read = table.num_rows + coercion.rows_dropped
    table, counts = run_steps(table, steps[start:stop])
    return _to_pandas(table), counts, coercion, rows_read


def _run(frame: pd.DataFrame, steps, start: int, stop: int):
    table, counts = run_steps(_to_arrow(frame), steps[start:stop])
    return _to_pandas(table), counts


def _finish(frame: pd.DataFrame, part: tuple, options: dict) -> Summary:
    table = _to_arrow(frame)
    if ORDER in table.column_names:
        table = table.drop_columns([ORDER])
    table, summary = summarize(table, **options)
    filesystem, path = part
    pq.write_table(table, path, filesystem=filesystem)
    return summary


def _add_duplicates(found: list[tuple[int, list]]) -> tuple[int, list]:
    return sum(count for count, _ in found), smallest([part for _, part in found])


def _meta(schema: pa.Schema) -> pd.DataFrame:
    return _to_pandas(schema.empty_table())


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: no copies, and the types come back unchanged."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)
