"""Reading the raw sources a spec declares: CSV (plain or .gz), Parquet, JSON Lines."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.spec import Source

# Markers that mean "missing" in raw CSVs (R writes NA; pandas writes an empty field).
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


def source_format(source: Source, uri: str) -> str:
    if source.format != "auto":
        return source.format
    name = uri.lower().removesuffix(".gz")
    for suffix, fmt in ((".csv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "jsonl")):  # fmt: skip
        if name.endswith(suffix):
            return fmt
    raise BadInput(f"cannot tell the format of {uri}: set format: csv, parquet or jsonl")


def read_source(name: str, uri: str, fmt: str) -> pd.DataFrame:
    """One source as a DataFrame; a malformed file is a BadInput naming it."""
    filesystem, path = storage.arrow_filesystem(uri)
    try:
        if fmt == "parquet":
            table = pq.read_table(path, filesystem=filesystem)
        else:
            # open_input_stream decompresses .gz by its extension.
            with filesystem.open_input_stream(path) as stream:
                table = _read_text(stream, fmt)
    except FileNotFoundError:
        raise BadInput(f"source {name}: input not found: {uri}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as error:
        raise BadInput(f"source {name}: cannot read {uri} as {fmt}: {error}") from None
    if table.num_rows == 0:
        raise BadInput(f"source {name}: {uri} has no rows")
    return table.to_pandas()


def _read_text(stream, fmt: str) -> pa.Table:
    if fmt == "csv":
        convert = pa_csv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True)
        return pa_csv.read_csv(stream, convert_options=convert)
    return pa_json.read_json(stream)
