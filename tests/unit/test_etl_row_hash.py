"""Row hashes (the sample, the unique rule's keys) depend on the row alone: not on which
block it is in, nor on whether that block has nulls in some column."""

from __future__ import annotations

import datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from mlbatch_jobs.etl.row_hash import row_hashes

KEY = "0000000000000042"
COLUMNS = {
    "int64": pa.array([3, 7, None, 7, 3]),
    "bool": pa.array([True, False, None, False, True]),
    "float64": pa.array([1.5, 2.5, None, 2.5, 1.5]),
    "string": pa.array(["a", "b", None, "b", "a"]),
    "timestamp": pa.array([datetime.datetime(2013, 1, 1, h) if h is not None else None
                           for h in (5, 6, None, 6, 5)], pa.timestamp("us", tz="UTC")),
    "date32": pa.array([datetime.date(2013, 1, d) if d else None for d in (1, 2, None, 2, 1)]),
    "decimal": pa.array([Decimal("1.10"), Decimal("2.20"), None, Decimal("2.20"),
                         Decimal("1.10")], pa.decimal128(10, 2)),
    "list": pa.array([[1], [2], None, [2], [1]]),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_a_row_hashes_the_same_in_any_block(kind):
    table = pa.table({"x": COLUMNS[kind], "n": pa.array([1, 2, 3, 2, 1])})
    whole = row_hashes(table, key=KEY)
    # Rows 0-1 in a block without nulls, rows 2-4 in one with the null.
    blocks = np.concatenate([row_hashes(table.slice(0, 2), key=KEY),
                             row_hashes(table.slice(2), key=KEY)])  # fmt: skip
    assert (blocks == whole).all()
    assert whole[1] == whole[3] and whole[0] == whole[4]  # equal rows, equal hashes
    assert len({whole[0], whole[1], whole[2]}) == 3


def test_the_key_and_the_column_order_change_the_hashes():
    table = pa.table({"a": [1, 2], "b": [2, 1]})
    assert (row_hashes(table, key=KEY) != row_hashes(table, key="0" * 16)).all()
    first, second = row_hashes(table)  # (1, 2) and (2, 1): the same values, not the same row
    assert first != second


def test_a_null_is_not_the_zero_it_is_filled_with():
    table = pa.table({"x": pa.array([0, None]), "s": pa.array(["", None])})
    first, second = row_hashes(table)
    assert first != second
