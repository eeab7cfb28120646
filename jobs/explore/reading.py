"""etl's table read for explore without ever holding it whole.

Read in full: only the columns features' split needs (the target and the split's time or
group column), to find features' training rows exactly as features will. Everything
else streams once, batch by batch (`ParquetFile.iter_batches`, text as dictionary codes,
which tally.py counts without decoding them): every batch feeds each column's tally
(tally.py: exact counts, extremes, means; distinct counts exact up to a limit) and leaves
behind only its rows that the two samples draw:
- the summary's sample, at most `sample_rows` rows of the whole table (histograms, and the
  top values of columns past the tally's exact limit): summary.sample_table's rows;
- the analysis sample, at most `sample_rows` of features' training rows (power, codes,
  relations): the rows summary.sample_table draws from training.training_table.
So both samples are the very rows the in-memory functions draw, and on a table of at most
`sample_rows` rows every number is the one they give; memory is one batch, the samples
and the split's columns, whatever the table's length.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch.spec import PipelineSpec
from mlbatch_jobs.explore.summary import check_table, sample_positions
from mlbatch_jobs.explore.tally import EXACT_DISTINCT, TableTally, add_batch, new_tallies
from mlbatch_jobs.explore.training import split_columns, training_positions

BATCH_ROWS = 65_536
# Dictionary codes take at most 4 bytes a value, a plain string 4 (its length) and its
# characters: a text column stored in fewer is read as codes (`_coded_text`).
CODE_BYTES = 4
# Where the stage leaves its read for the notebook it executes (see `shared`).
SHARED_ENV = "MLBATCH_EXPLORE_READING"


@dataclass
class Reading:
    schema: pa.Schema
    tally: TableTally  # every column's facts, and the summary's sample
    target: pa.ChunkedArray  # the target column, every row
    training_rows: int  # rows features trains on (every row when unsplit)
    unsplit: str | None  # None, or why every row is scored
    training_sample: pa.Table  # at most sample_rows training rows, for target-based checks


def read_table(
    source: Any,
    spec: PipelineSpec,
    *,
    target: str,
    task: str,
    sample_rows: int,
    seed: int,
    exact_distinct: int | None = EXACT_DISTINCT,
    batch_rows: int = BATCH_ROWS,
) -> Reading:
    """Reads etl's table (a path or a file object of Parquet) once, as explore needs it."""
    file = pq.ParquetFile(source)
    schema, rows = file.schema_arrow, file.metadata.num_rows
    check_table(schema, rows, target=target, task=task)
    split = file.read(columns=split_columns(schema.names, spec, target=target))
    training, unsplit = training_positions(split, spec, target=target, task=task)
    training = np.arange(rows) if training is None else np.asarray(training)
    drawn = sample_positions(len(training), sample_rows, seed=seed)
    summary_rows = Rows(sample_positions(rows, sample_rows, seed=seed), schema)
    training_sample = Rows(training if drawn is None else training[drawn], schema)

    tallies = new_tallies(schema, exact_distinct)
    offset = 0
    # Text streams as dictionary codes where Parquet stores it so: decoding builds no
    # string per row, and the tally counts codes instead of hashing text (10M rows of the
    # benchmark: decoding 3.3 -> 1.9 CPU-s, counting text 1.6 -> 0.4).
    coded = pq.ParquetFile(source, metadata=file.metadata, read_dictionary=_coded_text(file))
    for batch in coded.iter_batches(batch_size=batch_rows):
        add_batch(tallies, batch)
        summary_rows.add(batch, offset)
        training_sample.add(batch, offset)
        offset += batch.num_rows
    for tally in tallies.values():
        tally.finish()
    return Reading(
        schema=schema,
        tally=TableTally(rows, tallies, summary_rows.table(), exact_distinct),
        target=split.column(target), training_rows=len(training), unsplit=unsplit,
        training_sample=training_sample.table(),
    )  # fmt: skip


class Rows:
    """The rows at given positions of a table streamed in order, in the given order, with
    the table's types (`schema`): text decoded as it comes, since rows taken from a batch
    of codes would hold on to the batch's whole dictionary."""

    def __init__(self, positions: np.ndarray | None, schema: pa.Schema):
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self.ordered = None if positions is None else np.sort(self.positions)
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []

    def add(self, batch: pa.RecordBatch, offset: int) -> None:
        if self.ordered is None:  # every row
            self.batches.append(batch.cast(self.schema))
            return
        low, high = np.searchsorted(self.ordered, [offset, offset + batch.num_rows])
        if high > low:
            taken = batch.take(pa.array(self.ordered[low:high] - offset))
            self.batches.append(taken.cast(self.schema))

    def table(self) -> pa.Table:
        table = pa.Table.from_batches(self.batches, schema=self.schema)
        if self.positions is None or np.array_equal(self.positions, self.ordered):
            return table
        return table.take(pa.array(np.searchsorted(self.ordered, self.positions)))


def _coded_text(file: pq.ParquetFile) -> list[str]:
    """Text columns stored as dictionary codes in every row group. A writer falls back to
    plain strings when a row group's dictionary outgrows its page (1 MiB in Arrow), as
    with identifiers; read as codes, those would be hashed into a dictionary row by row,
    five times the CPU time of reading strings."""
    meta, names = file.metadata, []
    leaves = {meta.schema.column(leaf).path: leaf for leaf in range(meta.num_columns)}
    for field in file.schema_arrow:
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        leaf = leaves[field.name]  # a top-level column's own
        chunks = [meta.row_group(group).column(leaf) for group in range(meta.num_row_groups)]
        if all(chunk.has_dictionary_page
               and chunk.total_uncompressed_size < CODE_BYTES * max(chunk.num_values, 1)
               for chunk in chunks):  # fmt: skip
            names.append(field.name)
    return names


def share(read: Reading, path: Path, *, run_uri: str) -> None:
    """Leaves the stage's read where the notebook's kernel finds it (SHARED_ENV): the
    notebook the stage executes then recomputes from it instead of streaming the same
    table a second time."""
    with open(path, "wb") as out:
        pickle.dump({"run_uri": run_uri, "reading": read}, out, protocol=5)
    os.environ[SHARED_ENV] = str(path)


def shared(run_uri: str) -> Reading | None:
    """The read the stage shared for this run, or None (the notebook run elsewhere, or
    pointed at another run, streams the table itself)."""
    path = os.environ.get(SHARED_ENV)
    if not path or not Path(path).is_file():
        return None
    with open(path, "rb") as source:
        found = pickle.load(source)  # written by this run's own stage, in its work folder
    return found["reading"] if found.get("run_uri") == run_uri else None
