"""`mlbatch run --data FILE --target COL`: a spec for a table nobody wrote a spec for."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.tasks import resolve_task

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


def spec_for_data(data: str, target: str, task: str = "auto") -> dict:
    """A spec that reads one file and learns `target`, with the task inferred from the data."""
    uri = storage.resolve_uri(data)
    if storage.stat(uri) is None:
        raise BadInput(f"input not found: {data}")
    column = read_column(uri, target)
    resolved = resolve_task(task, column.to_pandas().rename(target))
    stem = Path(uri.split("/")[-1].split(".")[0]).name
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-") or "data"
    return {
        "name": name,
        "description": f"{target} from {data}",
        "target": target,
        "task": resolved,
        "etl": {"sources": {"data": {"uri": uri}}},
    }


def read_column(uri: str, column: str) -> pa.ChunkedArray:
    """One column of a CSV or Parquet file; BadInput naming the file if it is not there."""
    filesystem, path = storage.arrow_filesystem(uri)
    name = uri.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            columns = pq.read_schema(path, filesystem=filesystem).names
            _check(column, columns, uri)
            return pq.read_table(path, columns=[column], filesystem=filesystem)[column]
        with filesystem.open_input_stream(path) as stream:
            table = pa_csv.read_csv(
                stream, convert_options=pa_csv.ConvertOptions(null_values=NULL_VALUES,
                                                              strings_can_be_null=True),
            )  # fmt: skip
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {uri}: {error}") from None
    _check(column, table.column_names, uri)
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise BadInput(f"{uri}: column {field.name!r} is not UTF-8 text; re-encode the file")
    return table[column]


def _check(column: str, columns: list[str], uri: str) -> None:
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise BadInput(f"{uri}: duplicate column names: {', '.join(duplicates)}")
    if column not in columns:
        raise BadInput(f"target column {column!r} is not in {uri} (columns: {', '.join(columns)})")
