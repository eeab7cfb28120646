"""The pandas+pyarrow engine: the whole table in memory in one process.

Steps run as Arrow kernels; the row-local ones run over slices of rows on a thread pool
(Arrow kernels release the GIL), a step with shuffle keys (dedupe) on the whole table.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlbatch.errors import BadInput
from mlbatch_jobs.etl import output
from mlbatch_jobs.etl.plan import Plan
from mlbatch_jobs.etl.reading import ORDER
from mlbatch_jobs.etl.summary import (
    HASH,
    Outcome,
    add_coercions,
    add_counts,
    merge_summaries,
    run_steps,
    summarize,
)
from mlbatch_jobs.etl.validation import duplicate_keys

MIN_SLICE_ROWS = 100_000  # below this, threads cost more than they save


def run(
    plan: Plan, *, sample: int | None = None, seed: int = 0, staged: Path | None = None
) -> tuple[pa.Table, Outcome]:
    """The output table (sampled when asked) and what each step did.

    Args:
        staged: where to start writing the table (unsampled) while it is being summarized
            and validated: Parquet encoding is single-threaded, the checks can share the
            time. The stage renames the file into place once the table passed.
    """
    threads = len(os.sched_getaffinity(0))
    segments = _segments(plan.steps)
    first = segments.pop(0) if segments[0][0].shuffle_keys is None else []
    with ThreadPoolExecutor(threads) as pool:
        # A file at a time, its slices on the threads through the first row-local steps:
        # only one file's input is held beside the output so far.
        parts, runs, coercions, rows_read = [], [], [], 0
        for index in range(len(plan.main.files)):
            table, coercion = plan.main.read_file(index)
            coercions.append(coercion)
            rows_read += table.num_rows + coercion.rows_dropped
            done = list(pool.map(lambda part: run_steps(part, first), _slices(table, threads)))
            parts += [t for t, _ in done]
            runs += [c for _, c in done]
        if rows_read == 0:
            files = ", ".join(f.uri for f in plan.main.files)
            raise BadInput(f"source {plan.main.name}: no rows in {files}")
        table = pa.concat_tables(parts)
        del parts, done
        coercion = add_coercions(coercions, plan.main.source.on_error)
        counts = add_counts(runs)
        for segment in segments:
            if segment[0].shuffle_keys is not None:
                table, segment_counts = run_steps(table, segment)
            else:
                slices = _slices(table, threads)
                done = list(pool.map(lambda part, s=segment: run_steps(part, s), slices))
                table = pa.concat_tables([t for t, _ in done])
                segment_counts = add_counts([c for _, c in done])
            counts += segment_counts
        if ORDER in table.column_names:
            table = table.drop_columns([ORDER])
        writing = (
            pool.submit(output.write_parquet, table, staged) if staged and not sample else None
        )
        summaries = list(
            pool.map(
                lambda part: summarize(part, validator=plan.validator, target=plan.target,
                                       sample=sample, seed=seed),
                _slices(table, threads),
            )
        )  # fmt: skip
        duplicates = {
            index: duplicate_keys(table, columns)
            for index, columns in plan.validator.unique_rules()
        }
        if writing is not None:
            writing.result()
    summary = merge_summaries([s for _, s in summaries], sample=sample)
    if sample and table.num_rows > sample:
        hashes = np.concatenate([t[HASH].to_numpy() for t, _ in summaries])
        keep = np.sort(np.argsort(hashes, kind="stable")[:sample])
        table = table.take(pa.array(keep))
    outcome = Outcome(counts, rows_read, coercion, summary, duplicates)
    return table, outcome


def _segments(steps: list) -> list[list]:
    """Runs of row-local steps, and each step with shuffle keys on its own."""
    segments: list[list] = []
    for step in steps:
        if (
            not segments
            or step.shuffle_keys is not None
            or segments[-1][0].shuffle_keys is not None
        ):
            segments.append([step])
        else:
            segments[-1].append(step)
    return segments


def _slices(table: pa.Table, threads: int) -> list[pa.Table]:
    count = max(1, min(threads, table.num_rows // MIN_SLICE_ROWS))
    if count == 1:
        return [table]
    size = -(-table.num_rows // count)
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]
