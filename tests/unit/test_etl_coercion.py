"""Converting values to declared types: what parses, what does not, and the policies."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from mlbatch.errors import BadInput
from mlbatch.spec.etl import ColumnType
from mlbatch_jobs.etl.coercion import coerce_table, convert, type_name

YORK = ZoneInfo("America/New_York")


def parse(values: list, **declared) -> tuple[list, list]:
    converted, bad = convert(pa.chunked_array([pa.array(values)]), ColumnType(**declared))
    return converted.to_pylist(), [False] * len(values) if bad is None else bad.to_pylist()


@pytest.mark.parametrize(
    "values, declared, expected, bad",
    [
        (["1", " 2 ", "x", None, "99999999999999999999"], {"type": "int64"},
         [1, 2, None, None, None], [False, False, True, False, True]),
        (["1.5", "1e3", "abc"], {"type": "float64"}, [1.5, 1000.0, None], [False, False, True]),
        (["yes", "No", "1", "maybe"], {"type": "bool"}, [True, False, True, None],
         [False, False, False, True]),
        ([1.0, 2.5], {"type": "int64"}, [1, None], [False, True]),  # no silent truncation
        ([1, 2**40], {"type": "int32"}, [1, None], [False, True]),
        (["2013-01-05", "2013-13-01"], {"type": "date"},
         [datetime(2013, 1, 5).date(), None], [False, True]),
        (["05/01/2013 10:00", "x"], {"type": "timestamp", "format": "%d/%m/%Y %H:%M"},
         [datetime(2013, 1, 5, 10), None], [False, True]),
        (["2013-01-01T10:00:00Z", "2013-01-01 05:00:00"], {"type": "timestamp"},
         [datetime(2013, 1, 1, 10, tzinfo=UTC), datetime(2013, 1, 1, 5, tzinfo=UTC)],
         [False, False]),  # the first has an offset: instants, the others read as UTC
        (["2013-03-10 02:30:00", "2013-01-01 00:00:00"],
         {"type": "timestamp", "timezone": "America/New_York"},
         [None, datetime(2013, 1, 1, tzinfo=YORK)], [True, False]),  # 02:30 never happened there
    ],
)  # fmt: skip
def test_convert(values, declared, expected, bad):
    assert parse(values, **declared) == (expected, bad)


def test_many_bad_values_are_found_quickly():
    values = [str(i) if i % 3 else f"x{i}" for i in range(30_000)]
    converted, bad = parse(values, type="int64")
    assert sum(bad) == 10_000 and converted[1] == 1 and converted[0] is None


def test_policies():
    table = pa.table({"a": ["1", "x", "3"], "b": ["u", "v", "w"]})
    declared = {"a": ColumnType(type="int64")}
    dropped, coercion = coerce_table(table, declared, policy="drop", where="w")
    assert dropped["b"].to_pylist() == ["u", "w"] and coercion.rows_dropped == 1
    nulled, coercion = coerce_table(table, declared, policy="null", where="w")
    assert nulled["a"].to_pylist() == [1, None, 3] and coercion.bad == {"a": 1}
    with pytest.raises(BadInput, match="^here: column 'a': 1 values do not parse as int64"):
        coerce_table(table, declared, policy="error", where="here")


def test_type_names():
    assert type_name(pa.float64()) == "float64"
    assert type_name(pa.timestamp("s", tz="UTC")) == "timestamp"
    assert type_name(pa.large_string()) == "string"
    assert type_name(pa.date32()) == "date"
