"""Reading one source into typed Arrow tables, a whole file or one block at a time.

The schema is chosen once per source (declared types, the rest inferred from the first
MiB of text, the first rows of a sheet, or the Parquet footers), and so is a CSV's
dialect (sniffed from the same MiB); every file and block is read with them, so both
engines see the same types and values whatever the partitioning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlbatch import csv_dialect, storage
from mlbatch.csv_dialect import Dialect
from mlbatch.errors import BadInput
from mlbatch.spec.etl import ColumnType, Source
from mlbatch.spreadsheets import read_xlsx
from mlbatch_jobs.etl import text_files
from mlbatch_jobs.etl.coercion import OFFSET, Coercion, arrow_type, coerce_table, type_name
from mlbatch_jobs.etl.files import SourceFile

INFER_BYTES = csv_dialect.SAMPLE_BYTES
INFER_ROWS = 10_000  # of a sheet
ORDER = "__order"  # input order across files and blocks, added only when a step needs it
FILE_SPAN = 1 << 40  # order = file index * FILE_SPAN + the row's position in its file
INFERRED_NOTE = "; the type was inferred from the first MiB: declare it under columns:"


@dataclass(frozen=True)
class Block:
    """A part of one file that can be read on its own."""

    index: int  # the file's position in the source
    start: int = 0  # byte offset (text) or first row group (Parquet)
    stop: int | None = None  # exclusive; None: to the end of the file
    first_row: int = 0  # Parquet: the row number of the block's first row


@dataclass
class SourceReader:
    """Reads one source's files with one schema; pickled to Dask workers."""

    name: str
    source: Source
    files: list[SourceFile]
    read_types: dict[str, pa.DataType] = field(default_factory=dict)  # as parsed from bytes
    types: dict[str, pa.DataType] = field(default_factory=dict)  # as returned
    declared: dict[str, ColumnType] = field(default_factory=dict)  # with zones settled
    with_order: bool = False
    dialect: Dialect | None = None  # CSV: sniffed from the file the schema comes from

    @classmethod
    def open(cls, name: str, source: Source, files: list[SourceFile]) -> SourceReader:
        """Choose the source's schema from its declarations and its first file."""
        reader = cls(name=name, source=source, files=files)
        inferred, sample = reader._infer()
        missing = [c for c in source.columns if c not in inferred.names]
        if missing:
            raise BadInput(
                f"source {name}: declared column {missing[0]!r} is not in {files[0].uri} "
                f"(columns: {', '.join(inferred.names)})"
            )
        for column in inferred:
            read = pa.string() if pa.types.is_null(column.type) else column.type
            if pa.types.is_timestamp(read):
                read = pa.timestamp("us", tz=read.tz)
            reader.read_types[column.name] = read
            declared = source.columns.get(column.name)
            if declared is not None:
                offsets = _has_offsets(read, declared, sample, column.name)
                declared = _settle_zone(declared, read, offsets)
                reader.declared[column.name] = declared
                if declared.type == "timestamp" and declared.format is None and sample:
                    # Arrow parses ISO 8601 itself, fast; the zone is applied after.
                    read = pa.timestamp("us", tz="UTC" if offsets else None)
                    reader.read_types[column.name] = read
            reader.types[column.name] = read if declared is None else arrow_type(declared)
        return reader

    @property
    def format(self) -> str:
        return self.files[0].format

    def schema(self) -> pa.Schema:
        """The schema of every table this reader returns."""
        fields = [pa.field(name, kind) for name, kind in self.types.items()]
        return pa.schema(fields + ([pa.field(ORDER, pa.int64())] if self.with_order else []))

    def read_file(self, index: int) -> tuple[pa.Table, Coercion]:
        """One whole file."""
        return self.read_block(Block(index=index))

    def read_block(self, block: Block) -> tuple[pa.Table, Coercion]:
        """One block, typed; with `with_order`, each row's input order in ORDER."""
        file = self.files[block.index]
        where = f"source {self.name}: file {file.uri}"
        if self.format == "parquet":
            table, offset = self._read_parquet(file, block, where), block.first_row
        elif self.format == "xlsx":
            table, offset = self._read_xlsx(file, where), 0
        else:
            table, offset = self._read_text(file, block, where)
        table, coercion = self._coerce(table, where)
        if self.with_order:
            order = block.index * FILE_SPAN + offset + np.arange(table.num_rows, dtype=np.int64)
            table = table.append_column(ORDER, pa.array(order))
        return table, coercion

    def read_slices(self, block: Block, rows: int) -> Iterator[tuple[pa.Table, Coercion]]:
        """A block as consecutive slices of at most `rows` rows, each typed and ordered as
        read_block would: a Parquet row group is decoded a batch at a time, so a block
        never needs to be in memory whole (a writer's row group may be 1M rows)."""
        if self.format != "parquet":
            table, coercion = self.read_block(block)  # bounded by the block's bytes
            yield table.slice(0, rows), coercion
            for start in range(rows, table.num_rows, rows):
                yield table.slice(start, rows), Coercion(policy=coercion.policy)
            return
        file = self.files[block.index]
        where = f"source {self.name}: file {file.uri}"
        offset = block.first_row
        for table in self._parquet_batches(file, block, rows, where):
            table, coercion = self._coerce(table, where)
            if self.with_order:
                order = block.index * FILE_SPAN + offset + np.arange(table.num_rows, dtype=np.int64)
                table = table.append_column(ORDER, pa.array(order))
            offset += table.num_rows
            yield table, coercion

    def blocks(self, partition_bytes: int) -> list[Block]:
        """Blocks of about partition_bytes each (a compressed file is one block)."""
        blocks = []
        for index, file in enumerate(self.files):
            if self.format == "parquet":
                blocks += _row_group_blocks(index, file, partition_bytes)
            elif not file.splittable or (self.dialect and self.dialect.quoted_newlines):
                blocks.append(Block(index=index))  # a line end may be inside a quoted field
            else:
                starts = range(0, file.size, partition_bytes)
                blocks += [Block(index=index, start=s, stop=s + partition_bytes) for s in starts]
        return blocks

    def _infer(self) -> tuple[pa.Schema, pa.Table | None]:
        if self.format == "parquet":
            return _parquet_schema(self.name, self.files), None
        if self.format == "xlsx":
            where = f"source {self.name}: file {self.files[0].uri}"
            table = self._read_xlsx(self.files[0], where, rows=INFER_ROWS)
            return table.schema, table
        text_types = {
            name: pa.string()
            if declared.format or declared.type == "timestamp"
            else arrow_type(declared)
            for name, declared in self.source.columns.items()
        }
        for file in self.files:
            data = text_files.head_bytes(file, INFER_BYTES)
            where = f"source {self.name}: file {file.uri}"
            if self.format == "csv":
                self.dialect = self._sniff(data, where)
            table = self._parse(data, None, text_types, where, file, complete=False)
            if table.num_rows or file is self.files[-1]:
                return table.schema, table
        raise AssertionError("a source has at least one file")

    def _sniff(self, data: bytes, where: str) -> Dialect:
        keys = f"etl.sources.{self.name}"
        return csv_dialect.sniff(data, where=where, keys=keys, **self.source.dialect_keys())

    def _read_xlsx(self, file: SourceFile, where: str, rows: int | None = None) -> pa.Table:
        """A sheet with the columns of the inferred schema (all of them, when rows is None);
        its types are settled by _coerce, like text's."""
        table = read_xlsx(file.uri, sheet=self.source.sheet, where=where, rows=rows)
        names = list(self.read_types)
        if rows is None and table.column_names != names:
            raise BadInput(f"{where}: columns {table.column_names} are not {names}")
        return table

    def _read_text(self, file: SourceFile, block: Block, where: str) -> tuple[pa.Table, int]:
        names = list(self.read_types)
        if block.start == 0 and block.stop is None:
            tables = [
                self._parse(stream, None, self.read_types, where, file, member=member)
                for member, stream in enumerate(text_files.open_streams(file))
            ]
            for table in tables:
                if table.column_names != names:
                    raise BadInput(f"{where}: columns {table.column_names} are not {names}")
            return pa.concat_tables(tables), 0
        begin, data = text_files.line_range(file, block.start, block.stop)
        if not data:
            return pa.schema(list(self.read_types.items())).empty_table(), begin
        header = None if begin == 0 else names
        return self._parse(data, header, self.read_types, where, file, begin=begin), begin

    def _parse(
        self, data, names, types, where, file, *, complete=True, begin=0, member=0
    ) -> pa.Table:
        """Parse text (bytes, or a stream of member `member` of the file) with the types;
        when a value does not convert, parse it again as text."""
        try:
            return self._parse_raw(data, names, types, complete)
        except pa.ArrowInvalid as error:
            if not isinstance(data, bytes):  # a stream is spent: read the text again
                data = text_files.open_streams(file)[member].read()
            message = text_files.one_line(error)
            if "conversion error" not in message and "changed from" not in message:
                raise BadInput(self._describe(message, data, names, where, file, begin)) from None
        try:
            if self.format == "csv":
                return self._parse_raw(data, names, {n: pa.string() for n in types}, True)
            table = self._parse_raw(data, names, {}, False)
        except pa.ArrowInvalid as error:
            raise BadInput(f"{where}: {text_files.one_line(error)}") from None
        if not complete:  # inferring: the columns that did not convert stay text
            return table
        columns = [
            table[n] if n in table.column_names else pa.nulls(table.num_rows, pa.string())
            for n in types
        ]
        return pa.table(columns, names=list(types))

    def _parse_raw(self, data, names, types, complete: bool) -> pa.Table:
        stream = text_files.as_input(data)
        if self.format == "csv":
            return text_files.parse_csv(stream, names=names, types=types, dialect=self.dialect)
        return text_files.parse_jsonl(stream, types=types, complete=complete)

    def _describe(self, message, data, names, where, file, begin) -> str:
        if message == "Empty CSV file":
            return f"{where}: the file is empty"
        if self.format != "csv" or not message.startswith("CSV parse error"):
            return f"{where}: cannot read as {self.format}: {message}"
        problem = text_files.malformed_line(data, names=names, dialect=self.dialect)
        if begin and problem.startswith("line "):
            number, rest = problem[len("line ") :].split(":", 1)
            problem = f"line {text_files.lines_before(file, begin) + int(number)}:{rest}"
        separator = csv_dialect.separator_name(self.dialect.delimiter)
        how = "declared" if self.source.delimiter else "sniffed"
        return (
            f"{where}: malformed CSV, {problem} (separator {separator}, {how}; "
            f"etl.sources.{self.name}.delimiter and .quoted_newlines set the dialect)"
        )

    def _read_parquet(self, file: SourceFile, block: Block, where: str) -> pa.Table:
        filesystem, path = storage.arrow_filesystem(file.uri)
        try:
            with filesystem.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                groups = range(block.start, block.stop or parquet.num_row_groups)
                table = parquet.read_row_groups(groups, columns=list(self.read_types))
        except (pa.ArrowInvalid, OSError) as error:
            raise BadInput(f"{where}: {text_files.one_line(error)}") from None
        return table.cast(pa.schema(list(self.read_types.items())))

    def _parquet_batches(
        self, file: SourceFile, block: Block, rows: int, where: str
    ) -> Iterator[pa.Table]:
        filesystem, path = storage.arrow_filesystem(file.uri)
        schema = pa.schema(list(self.read_types.items()))
        try:
            with filesystem.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                groups = list(range(block.start, block.stop or parquet.num_row_groups))
                batches = parquet.iter_batches(
                    batch_size=rows, row_groups=groups, columns=list(self.read_types),
                    use_threads=False,
                )  # fmt: skip
                empty = True
                for batch in batches:
                    empty = False
                    yield pa.Table.from_batches([batch]).cast(schema)
                if empty:
                    yield schema.empty_table()
        except (pa.ArrowInvalid, OSError) as error:
            raise BadInput(f"{where}: {text_files.one_line(error)}") from None

    def _coerce(self, table: pa.Table, where: str) -> tuple[pa.Table, Coercion]:
        """Convert every column that is not yet of its type, under the source's policy."""
        pending = {
            name: self.declared.get(name) or _column_type(kind)
            for name, kind in self.types.items()
            if table.schema.field(name).type != kind
        }
        note = INFERRED_NOTE if set(pending) - set(self.declared) else ""
        if self.dialect is not None and self.dialect.decimal == ",":
            table = _decimal_points(
                table, [n for n in pending if pa.types.is_floating(self.types[n])]
            )
        return coerce_table(table, pending, policy=self.source.on_error, where=where, note=note)


def _decimal_points(table: pa.Table, columns: list[str]) -> pa.Table:
    """Text numbers with decimal commas (a column read as text because a value did not
    parse) in the form the conversion reads."""
    for name in columns:
        if pa.types.is_string(table.schema.field(name).type):
            index = table.column_names.index(name)
            table = table.set_column(index, name, pc.replace_substring(table[name], ",", "."))
    return table


def _column_type(kind: pa.DataType) -> ColumnType:
    """The declaration an inferred type stands for."""
    if pa.types.is_timestamp(kind):
        return ColumnType(type="timestamp", timezone=kind.tz)
    return ColumnType(type=type_name(kind))


def _has_offsets(read: pa.DataType, declared: ColumnType, sample, column: str) -> bool:
    """Whether a text timestamp column's values carry a UTC offset (its first value does)."""
    if declared.type != "timestamp" or not pa.types.is_string(read):
        return False
    if declared.format is not None:
        return "%z" in declared.format
    first = pc.drop_null(sample[column]).slice(0, 1).to_pylist() if sample else []
    return bool(first) and OFFSET.search(first[0]) is not None


def _settle_zone(declared: ColumnType, read: pa.DataType, offsets: bool) -> ColumnType:
    """A timestamp declared without a zone keeps the zone its values carry (UTC offsets)."""
    if declared.type != "timestamp" or declared.timezone is not None:
        return declared
    zone = read.tz if pa.types.is_timestamp(read) else ("UTC" if offsets else None)
    return declared.model_copy(update={"timezone": zone})


def _parquet_schema(name: str, files: list[SourceFile]) -> pa.Schema:
    schemas = []
    for file in files:
        filesystem, path = storage.arrow_filesystem(file.uri)
        try:
            schemas.append(pq.read_schema(path, filesystem=filesystem))
        except (pa.ArrowInvalid, OSError) as error:
            raise BadInput(f"source {name}: file {file.uri}: {error}") from None
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BadInput(f"source {name}: the files' schemas do not agree: {error}") from None


def _row_group_blocks(index: int, file: SourceFile, partition_bytes: int) -> list[Block]:
    filesystem, path = storage.arrow_filesystem(file.uri)
    metadata = pq.read_metadata(path, filesystem=filesystem)
    blocks, start, first_row, size, rows = [], 0, 0, 0, 0
    for group in range(metadata.num_row_groups):
        size += metadata.row_group(group).total_byte_size
        rows += metadata.row_group(group).num_rows
        if size >= partition_bytes or group == metadata.num_row_groups - 1:
            blocks.append(Block(index=index, start=start, stop=group + 1, first_row=first_row))
            start, first_row, size = group + 1, rows, 0
    return blocks
