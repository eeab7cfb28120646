"""Raw tables in the formats people have (CSV in any sniffed dialect, JSON Lines, Excel,
Parquet): the format told from a file's name, and whole files read for the controller
(`mlbatch run --data`, `mlbatch predict --input`) with the dialects the etl stage uses."""

from __future__ import annotations

import pyarrow as pa

from mlbatch import csv_dialect, storage
from mlbatch.errors import BadInput
from mlbatch.spec.etl import Source

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".zip": "zip"}
FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx",
}  # fmt: skip
SELF_COMPRESSED = ("parquet", "xlsx")


def detect_format(uri: str, declared: str = "auto") -> tuple[str, str | None]:
    """(format, compression) of a file from its name; the declared format wins."""
    name = uri.rsplit("/", 1)[-1].lower()
    compression = next((c for suffix, c in COMPRESSIONS.items() if name.endswith(suffix)), None)
    if compression is not None:
        name = name[: name.rfind(".")]
    fmt = declared
    if declared == "auto":
        fmt = next((f for suffix, f in FORMATS.items() if name.endswith(suffix)), None)
        if fmt is None:
            raise BadInput(f"cannot tell the format of {uri}: set format: csv, parquet, jsonl "
                           "or xlsx")  # fmt: skip
    if fmt in SELF_COMPRESSED and compression is not None:
        raise BadInput(f"{uri}: a {fmt} file compresses itself; read it uncompressed")
    return fmt, compression


def read_table(uri: str, source: Source, *, keys: str) -> pa.Table:
    """A whole file as the etl stage reads it: the source's declared format and dialect,
    the rest sniffed. `keys` names where a spec sets them, for errors."""
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    from mlbatch.spreadsheets import read_xlsx

    fmt, compression = detect_format(uri, source.format)
    if compression == "zip":
        raise BadInput(f"{uri}: a zip archive; the etl stage reads its members (use a spec)")
    filesystem, path = storage.arrow_filesystem(uri)
    where = f"file {uri}"
    try:
        if fmt == "parquet":
            return pq.read_table(path, filesystem=filesystem)
        if fmt == "xlsx":
            return read_xlsx(uri, sheet=source.sheet, where=where)
        with filesystem.open_input_stream(path, compression=compression) as stream:
            if fmt == "jsonl":
                return pa_json.read_json(stream)
            sample = csv_dialect.head(stream)
        dialect = csv_dialect.sniff(sample, where=where, keys=keys, **source.dialect_keys())
        with filesystem.open_input_stream(path, compression=compression) as stream:
            return pa_csv.read_csv(
                stream, read_options=dialect.read_options(),
                parse_options=dialect.parse_options(), convert_options=dialect.convert_options(),
            )  # fmt: skip
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {uri} as {fmt}: {' '.join(str(error).split())}") from None
