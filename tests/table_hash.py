"""One hash for a table's rows, whatever their order, chunking or schema metadata: how
tests check that two engines (or a cluster and a laptop) produced the same output."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.ipc as ipc


def sorted_sha256(table: pa.Table) -> str:
    """sha256 of the table sorted by every column, as one Arrow IPC record batch."""
    table = table.replace_schema_metadata(None)
    table = table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
