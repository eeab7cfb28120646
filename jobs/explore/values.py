"""How explore reads a value: its kind, missing values, and its form in JSON."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

MAX_TEXT = 200  # a longer top value or class label is cut in summary.json


def column_kind(type_: pa.DataType) -> str:
    """numeric, boolean, datetime, string or other: what the report can say about it."""
    if pa.types.is_dictionary(type_):
        return column_kind(type_.value_type)
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        return "datetime"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or _is_string_view(type_):
        return "string"
    return "other"


def json_value(value: Any) -> Any:
    """A value summary.json can hold: strict JSON numbers, ISO dates, cut long strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf / -inf; NaN never gets here (_clean makes it missing)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    if isinstance(value, bytes | dt.timedelta):
        return str(value)
    return value


def clean(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Categories decoded, and NaN counted as missing: pandas writes either for 'no value'."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    return column


def _is_string_view(type_: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check and check(type_))
