"""Declared column types: converting values to them, with a policy for values that do not
parse (error, null or drop the row), counted either way."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput
from mlbatch.spec.etl import ColumnType

ARROW_TYPES = {
    "string": pa.string(), "bool": pa.bool_(), "int8": pa.int8(), "int16": pa.int16(),
    "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "float64": pa.float64(), "date": pa.date32(),
}  # fmt: skip
NUMBER_PATTERNS = {
    "int": r"^[+-]?\d+$",
    "float": r"(?i)^[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf|infinity|nan)$",
}
OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")
TRUE = ["true", "t", "yes", "y", "1"]
FALSE = ["false", "f", "no", "n", "0"]
EXAMPLES = 3
LEAF = 16  # below this many values, find the bad ones one by one
CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass
class Coercion:
    """Values that did not parse, per column, under one policy."""

    policy: str
    bad: dict[str, int] = field(default_factory=dict)
    rows_dropped: int = 0


def arrow_type(declared: ColumnType) -> pa.DataType:
    """The Arrow type a declared column ends up as."""
    if declared.type == "timestamp":
        return pa.timestamp("us", tz=declared.timezone)
    return ARROW_TYPES[declared.type]


def type_name(arrow: pa.DataType) -> str:
    """The spec's name for an Arrow type (timestamp for any unit and zone)."""
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_date(arrow):
        return "date"
    names = {v: k for k, v in ARROW_TYPES.items()}
    return names.get(arrow, str(arrow))


def coerce_table(
    table: pa.Table, columns: dict[str, ColumnType], *, policy: str, where: str, note: str = ""
) -> tuple[pa.Table, Coercion]:
    """Convert columns to their declared types, applying the policy to values that fail.

    Args:
        where: names the place for messages, e.g. "source flights: file .../flights.csv".
        note: appended to the error message (how the type was chosen, how to change it).
    """
    result = Coercion(policy=policy)
    drop = None
    for name, declared in columns.items():
        if name not in table.column_names:
            continue
        values, bad = convert(table[name], declared)
        count = int(pc.sum(bad).as_py() or 0) if bad is not None else 0
        if count:
            if policy == "error":
                examples = ", ".join(repr(v) for v in _examples(table[name], bad))
                raise BadInput(
                    f"{where}: column {name!r}: {count:,} values do not parse as "
                    f"{declared.type}, e.g. {examples} (on_error: error){note}"
                )
            result.bad[name] = count
            drop = bad if drop is None else pc.or_(drop, bad)
        table = table.set_column(table.column_names.index(name), name, values)
    if drop is not None and policy == "drop":
        before = table.num_rows
        table = table.filter(pc.invert(drop))
        result.rows_dropped = before - table.num_rows
    return table, result


def convert(values: pa.ChunkedArray | pa.Array, declared: ColumnType):
    """(converted values, mask of values that did not parse or None); bad values become null.

    Chunk by chunk, so the result lines up with the table's other columns (Arrow filters
    tables whose columns share their chunks much faster).
    """
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    declared = _settle_offsets(chunks, declared)
    empty, _ = _convert_chunk(pa.array([], values.type), declared)
    results = [_convert_chunk(chunk, declared) for chunk in chunks]
    converted = pa.chunked_array([c for c, _ in results], type=empty.type)
    if all(bad is None for _, bad in results):
        return converted, None
    masks = [pa.array(np.zeros(len(c), bool)) if bad is None else bad for c, bad in results]
    return converted, pa.chunked_array(masks, type=pa.bool_())


def _settle_offsets(chunks: list[pa.Array], declared: ColumnType) -> ColumnType:
    """Text timestamps declared without a zone: UTC instants when the first value has an
    offset (values without one are then UTC too), local times otherwise."""
    if declared.type != "timestamp" or declared.timezone or declared.format:
        return declared
    text = [c for c in chunks if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)]
    first = next((c.drop_null()[0].as_py() for c in text if len(c.drop_null())), None)
    if first is not None and OFFSET.search(first):
        return declared.model_copy(update={"timezone": "UTC"})
    return declared


def _convert_chunk(values: pa.Array, declared: ColumnType):
    source = values.type
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        return _from_text(values, declared)
    target = arrow_type(declared)
    if declared.type == "timestamp" and pa.types.is_timestamp(source):
        return _convert_each(values, lambda v: _to_zone(v, declared.timezone))
    return _convert_each(values, lambda v: pc.cast(v, target))


def _from_text(values: pa.Array, declared: ColumnType):
    kind = declared.type
    if kind == "string":
        return values, None
    if kind == "bool":
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        converted = pc.if_else(
            pc.is_in(lowered, pa.array(TRUE)),
            True,
            pc.if_else(pc.is_in(lowered, pa.array(FALSE)), False, None),
        )
        return converted, pc.and_(values.is_valid(), converted.is_null())
    if declared.format is not None:
        parsed = pc.strptime(values, format=declared.format, unit="us", error_is_null=True)
        if kind == "date":
            parsed = parsed.cast(pa.date32())
        else:
            parsed, _ = _convert_each(parsed, lambda v: _to_zone(v, declared.timezone))
        return parsed, pc.and_(values.is_valid(), parsed.is_null())
    target = arrow_type(declared)
    if kind.startswith(("int", "float")):
        pattern = NUMBER_PATTERNS["int" if kind.startswith("int") else "float"]
        trimmed = pc.utf8_trim_whitespace(values)
        plausible = pc.match_substring_regex(trimmed, pattern)
        candidates = pc.if_else(plausible, trimmed, None)
        converted, _ = _convert_each(candidates, lambda v: pc.cast(v, target))
        return converted, pc.and_(values.is_valid(), converted.is_null())
    if kind == "timestamp":
        return _convert_each(values, lambda v: _parse_timestamps(v, declared.timezone))
    return _convert_each(values, lambda v: pc.cast(v, target))


def _parse_timestamps(values: pa.Array, timezone: str | None) -> pa.Array:
    """ISO 8601 text: values with an offset are instants, values without are local times."""
    if timezone is None:
        return pc.cast(values, pa.timestamp("us"))
    try:
        return _to_zone(pc.cast(values, pa.timestamp("us")), timezone)
    except pa.ArrowInvalid:
        return pc.cast(values, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz=timezone))


def _to_zone(values: pa.Array, timezone: str | None) -> pa.Array:
    """Microsecond timestamps in the zone: local times are placed there, instants converted."""
    values = values.cast(pa.timestamp("us", tz=values.type.tz))
    if timezone is None:
        return values
    if values.type.tz is None:
        return pc.assume_timezone(values, timezone)
    return values.cast(pa.timestamp("us", tz=timezone))


def _convert_each(values: pa.Array, convert_all: Callable[[pa.Array], pa.Array]):
    """Convert all values at once; when that fails, split to find the values that fail."""
    try:
        return convert_all(values), None
    except CONVERSION_ERRORS:
        pass
    parts: list[pa.Array] = []
    failed: list[int] = []
    _bisect(values, convert_all, 0, parts, failed)
    bad = np.zeros(len(values), dtype=bool)
    bad[failed] = True
    return pa.chunked_array(parts).combine_chunks(), pa.array(bad)


def _bisect(values: pa.Array, convert_all, offset: int, parts: list, failed: list) -> None:
    try:
        parts.append(convert_all(values))
        return
    except CONVERSION_ERRORS:
        if len(values) > LEAF:
            half = len(values) // 2
            _bisect(values.slice(0, half), convert_all, offset, parts, failed)
            _bisect(values.slice(half), convert_all, offset + half, parts, failed)
            return
    for i in range(len(values)):
        try:
            parts.append(convert_all(values.slice(i, 1)))
        except CONVERSION_ERRORS:
            parts.append(convert_all(pa.nulls(1, values.type)))
            failed.append(offset + i)


def _examples(values: pa.ChunkedArray, bad: pa.ChunkedArray) -> list:
    failed = pc.filter(values, bad)
    return pc.unique(failed).slice(0, EXAMPLES).to_pylist()
