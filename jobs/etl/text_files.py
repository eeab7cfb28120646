"""CSV and JSON Lines bytes: opening (compressed or zipped), line-aligned byte ranges, and
parsing with a known schema, with errors that name the file and line."""

from __future__ import annotations

import io
import zipfile

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from mlbatch import csv_dialect, storage
from mlbatch.csv_dialect import Dialect
from mlbatch.errors import BadInput
from mlbatch_jobs.etl.files import SourceFile

SEEK_CHUNK = 1 << 16
CSV_BLOCK = 4 << 20


def open_streams(file: SourceFile) -> list:
    """Readable streams of the file's text: one, or one per member of a zip archive."""
    filesystem, path = storage.arrow_filesystem(file.uri)
    if file.compression == "zip":
        archive = zipfile.ZipFile(filesystem.open_input_file(path))
        members = [
            m for m in sorted(archive.namelist())
            if not m.endswith("/") and not m.rsplit("/", 1)[-1].startswith((".", "__MACOSX"))
        ]  # fmt: skip
        if not members:
            raise BadInput(f"{file.uri}: the zip archive holds no file")
        return [archive.open(member) for member in members]
    return [filesystem.open_input_stream(path, compression=file.compression)]


def head_bytes(file: SourceFile, size: int) -> bytes:
    """About the first `size` bytes of the text, cut after the last whole line."""
    return csv_dialect.head(open_streams(file)[0], size)


def line_range(file: SourceFile, start: int, stop: int) -> tuple[int, bytes]:
    """(offset, bytes) of the lines that begin in [start, stop) of an uncompressed file."""
    filesystem, path = storage.arrow_filesystem(file.uri)
    with filesystem.open_input_file(path) as handle:
        begin = 0 if start == 0 else _after_newline(handle, start - 1, file.size)
        end = file.size if stop >= file.size else _after_newline(handle, stop - 1, file.size)
        return begin, handle.read_at(end - begin, begin) if end > begin else b""


def _after_newline(handle, position: int, size: int) -> int:
    """The offset just after the first newline at or after position (size if none)."""
    while position < size:
        chunk = handle.read_at(min(SEEK_CHUNK, size - position), position)
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return size


def parse_csv(
    data, *, names: list[str] | None, types: dict[str, pa.DataType], dialect: Dialect
) -> pa.Table:
    """Parse CSV text; `names` when the text has no header line (a block past the first)."""
    # 4 MiB blocks: enough of them for the reader's threads, few enough that the kernels
    # after it are not paying per-chunk overhead (1 MiB gave 30 chunks for the demo).
    return pa_csv.read_csv(
        data,
        read_options=dialect.read_options(column_names=names, block_size=CSV_BLOCK),
        parse_options=dialect.parse_options(),
        convert_options=dialect.convert_options(column_types=types),
    )


def parse_jsonl(data, *, types: dict[str, pa.DataType], complete: bool) -> pa.Table:
    """Parse JSON Lines; `complete`: the types name every field, another one is an error."""
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema(list(types.items())) if types else None,
        unexpected_field_behavior="error" if complete else "infer",
    )
    return pa_json.read_json(data, parse_options=options)


def malformed_line(data: bytes, *, names: list[str] | None, dialect: Dialect) -> str:
    """Where and how a CSV text is malformed: "line N: expected 3 columns, got 2"."""
    found = []

    def handler(row) -> str:
        found.append(row)
        return "error"

    read = dialect.read_options(column_names=names, use_threads=False)
    parse = dialect.parse_options(invalid_row_handler=handler)
    convert = pa_csv.ConvertOptions(column_types={n: pa.string() for n in names or []})
    try:
        pa_csv.read_csv(pa.BufferReader(data), read_options=read, parse_options=parse,
                        convert_options=convert)  # fmt: skip
    except pa.ArrowInvalid as error:
        if not found:
            return one_line(error)
    if not found:
        return "malformed CSV"
    row = found[0]
    return f"line {row.number}: expected {row.expected_columns} columns, got {row.actual_columns}"


def lines_before(file: SourceFile, offset: int) -> int:
    """How many lines end before a byte offset of an uncompressed file."""
    filesystem, path = storage.arrow_filesystem(file.uri)
    count, position = 0, 0
    with filesystem.open_input_file(path) as handle:
        while position < offset:
            chunk = handle.read_at(min(1 << 22, offset - position), position)
            count += chunk.count(b"\n")
            position += len(chunk)
    return count


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def as_input(data: bytes | io.IOBase):
    return pa.BufferReader(data) if isinstance(data, bytes) else data
