"""`mlbatch run --data FILE --target COL`: a spec for a table nobody wrote a spec for."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.raw_tables import read_table
from mlbatch.spec import PipelineSpec, validate_spec
from mlbatch.spec.etl import Source
from mlbatch.tasks import resolve_task


def spec_for_data(data: str, target: str, task: str = "auto", overrides=()) -> PipelineSpec:
    """A spec that reads one file and learns `target`, with the task inferred from the data.

    The file is read as the etl stage will read it: its format and CSV dialect sniffed,
    unless an override sets them (`--set etl.sources.data.delimiter=';'`).
    """
    uri = storage.resolve_uri(data)
    if storage.stat(uri) is None:
        raise BadInput(f"input not found: {data}")
    stem = Path(uri.split("/")[-1].split(".")[0]).name
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-") or "data"
    document = {
        "name": name,
        "description": f"{target} from {data}",
        "target": target,
        "task": task,
        "etl": {"sources": {"data": {"uri": uri}}},
    }
    spec = validate_spec(document, overrides, source="--data")
    main = spec.etl.main_source
    column = read_column(spec.etl.sources[main], spec.target, keys=f"etl.sources.{main}")
    resolved = resolve_task(spec.task, column.to_pandas().rename(spec.target))
    return validate_spec({**document, "task": resolved}, overrides, source="--data")


def read_column(source: Source, column: str, *, keys: str) -> pa.ChunkedArray:
    """One column of the source's file; BadInput naming the file if it is not there."""
    uri = storage.resolve_uri(source.uri)
    table = read_table(uri, source, keys=keys)
    _check(column, table.column_names, uri)
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise BadInput(
                f"{uri}: column {field.name!r} is not {source.encoding or 'UTF-8'} text; "
                f"set {keys}.encoding"
            )
    return table[column]


def _check(column: str, columns: list[str], uri: str) -> None:
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise BadInput(f"{uri}: duplicate column names: {', '.join(duplicates)}")
    if column not in columns:
        raise BadInput(f"target column {column!r} is not in {uri} (columns: {', '.join(columns)})")
