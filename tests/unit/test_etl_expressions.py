"""Expressions as in pandas, evaluated with Arrow: values, nulls, and clear errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlbatch.errors import BadInput
from mlbatch_jobs.etl.expressions import Expression

YORK = ZoneInfo("America/New_York")
TABLE = pa.table({
    "x": [1, 20, None, 7],
    "s": ["JFK", "lga", None, "EWR"],
    "f": [1.5, float("nan"), None, 2.0],
    "t": pa.array([datetime(2013, 1, 1, 5, tzinfo=YORK), datetime(2013, 7, 1, 23, tzinfo=YORK),
                   None, datetime(2013, 12, 31, 0, tzinfo=YORK)]).cast(pa.timestamp("us", YORK)),
    "my col": [1, 2, 3, 4],
})  # fmt: skip


def values(text: str) -> list:
    return Expression(text, where="test").evaluate(TABLE).to_pylist()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x > 15", [False, True, None, False]),  # null stays null (SQL), not False
        ("x.notna()", [True, True, False, True]),
        ("f.isna()", [False, True, True, False]),  # NaN counts as missing, as in pandas
        ("x / 2", [0.5, 10.0, None, 3.5]),
        ("x // 3", [0.0, 6.0, None, 2.0]),
        ("x % 3", [1.0, 2.0, None, 1.0]),
        ("-x + x ** 2", [0, 380, None, 42]),
        ("(x > 1) & (x < 10)", [False, False, None, True]),
        ("x > 1 and s == 'lga'", [False, True, None, False]),
        ("~(x > 1)", [True, False, None, False]),
        ("0 < x < 10", [True, False, None, True]),
        ("s.isin(['JFK', 'EWR'])", [True, False, False, True]),
        ("s not in ['JFK']", [False, True, True, True]),
        ("s.str.lower()", ["jfk", "lga", None, "ewr"]),
        ("s.str.startswith('J')", [True, False, None, False]),
        ("s + '-' + s", ["JFK-JFK", "lga-lga", None, "EWR-EWR"]),
        ("t.dt.month", [1, 7, None, 12]),
        ("t.dt.hour", [5, 23, None, 0]),  # local hours in the column's zone
        ("t >= '2013-07-01 23:00:00'", [False, True, None, True]),
        ("f.fillna(0)", [1.5, 0.0, 0.0, 2.0]),
        ("x.between(2, 10)", [False, False, None, True]),
        ("x.clip(2, 10)", [2, 10, None, 7]),
        ("where(x > 5, 'big', 'small')", ["small", "big", None, "big"]),
        ("x if x > 5 else 0", [0, 20, None, 7]),
        ("coalesce(x, 0)", [1, 20, 0, 7]),
        ("x.astype('float64')", [1.0, 20.0, None, 7.0]),
        ("`my col` * 2", [2, 4, 6, 8]),
        ("1", [1, 1, 1, 1]),
    ],
)
def test_values(text, expected):
    assert values(text) == expected


def test_columns_read_by_an_expression():
    assert Expression("where(x > 1, `my col`, s.str.len())", where="t").columns == [
        "my col", "s", "x"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text, message",
    [
        ("y > 1", "test: 'y > 1': no column 'y' in the table"),
        ("x >", "'x >' is not an expression"),
        ("lambda: 1", "Lambda is not supported"),
        ("x.foo()", ".foo() is not supported"),
        ("t.dt.century", ".dt.century is not supported"),
        ("s > 1", "'s > 1': Function 'greater' has no kernel"),
    ],
)
def test_errors_name_the_expression(text, message):
    with pytest.raises(BadInput) as caught:
        values(text)
    assert message in str(caught.value)


def test_a_filter_mask_is_boolean():
    mask = Expression("x > 1", where="t").evaluate(TABLE)
    assert pa.types.is_boolean(mask.type)
    assert TABLE.filter(pc.fill_null(mask, False)).num_rows == 2
