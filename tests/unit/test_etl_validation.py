"""Each validation rule, passing and failing; counts that add up across slices; the report."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlbatch.spec.etl import EtlSpec
from mlbatch_jobs.etl.validation import (
    Validator,
    duplicate_keys,
    merge_partials,
    report,
)

TABLE = pa.table({
    "carrier": ["UA", "AA", "ZZ", None, "UA"],
    "delay": [10.0, 2000.0, -300.0, 5.0, None],
    "flight": [1, 2, 3, 4, 1],
    "day": pa.array([1, 1, 1, 2, 1], pa.int32()),
})  # fmt: skip


def findings(rules: list[dict], table: pa.Table = TABLE, allowed=None, slices: int = 1):
    spec = EtlSpec.model_validate({"sources": {"a": {"uri": "a"}}, "validation": rules})
    validator = Validator(spec.validation, allowed or {})
    size = -(-table.num_rows // slices)
    parts = [validator.check_rows(table.slice(i, size)) for i in range(0, table.num_rows, size)]
    duplicates = {i: duplicate_keys(table, cols) for i, cols in validator.unique_rules()}
    return validator.findings(table.schema, table.num_rows, merge_partials(parts), duplicates)


def one(rule: dict, **kwargs):
    (finding,) = findings([rule], **kwargs)
    return finding


@pytest.mark.parametrize(
    "rule, status, violations, text",
    [
        ({"rule": "required", "columns": ["carrier", "delay"]}, "passed", 0, "all present"),
        ({"rule": "required", "columns": ["carrier", "gate"]}, "failed", 1,
         "required(carrier, gate): no column 'gate' in the table"),
        ({"rule": "type", "columns": {"delay": "float64"}}, "passed", 0, "is float64"),
        ({"rule": "type", "columns": {"day": "int64"}}, "failed", 1,
         "type(day): is int32, not int64"),
        ({"rule": "not_null", "columns": ["flight"]}, "passed", 0, ""),
        ({"rule": "not_null", "columns": ["carrier"]}, "failed", 1,
         "not_null(carrier): 1 rows are null"),
        ({"rule": "range", "column": "flight", "min": 1, "max": 4}, "passed", 0, ""),
        ({"rule": "range", "column": "delay", "min": -60, "max": 1500}, "failed", 2,
         "range(delay): 2 rows outside [-60.0, 1500.0], e.g. -300.0, 2000.0"),
        ({"rule": "allowed", "column": "carrier", "values": ["UA", "AA", "ZZ"]}, "passed", 0, ""),
        ({"rule": "allowed", "column": "carrier", "values": ["UA", "AA"]}, "failed", 1,
         "allowed(carrier): 1 rows not allowed, e.g. 'ZZ'"),
        ({"rule": "unique", "columns": ["flight", "day"]}, "failed", 1,
         "unique(flight, day): 1 rows repeat the key of an earlier row, e.g. {'flight': 1"),
        ({"rule": "unique", "columns": ["carrier", "flight", "delay"]}, "passed", 0, ""),
        ({"rule": "row_count", "min": 1, "max": 5}, "passed", 0, "5 rows, expected [1, 5]"),
        ({"rule": "row_count", "min": 10}, "failed", 5, "row_count(): 5 rows, expected [10, ]"),
    ],
)  # fmt: skip
def test_each_rule(rule, status, violations, text):
    finding = one(rule)
    assert (finding.status, finding.violations) == (status, violations)
    assert text in finding.describe()


def test_warnings_are_reported_not_failed():
    finding = one({"rule": "not_null", "columns": ["carrier"], "severity": "warn"})
    assert finding.status == "warned" and finding.violations == 1


def test_allowed_values_from_a_source():
    rule = {"rule": "allowed", "column": "carrier", "source": "a"}
    finding = one(rule, allowed={0: pa.array(["UA", "ZZ"])})
    assert finding.status == "failed" and finding.examples == ["AA"]
    assert "not in a.carrier" in finding.describe()


def test_counts_add_up_across_slices():
    rules = [{"rule": "range", "column": "delay", "max": 100},
             {"rule": "not_null", "columns": ["delay", "carrier"]}]  # fmt: skip
    assert [(f.violations, f.examples) for f in findings(rules, slices=3)] == [
        (v.violations, v.examples) for v in findings(rules, slices=1)
    ]


def test_a_rule_on_a_missing_column_fails_early():
    (finding,) = findings([{"rule": "not_null", "columns": ["gate"]}])
    assert finding.status == "failed" and "in a column the table lacks" in finding.describe()


def test_range_on_timestamps_takes_text_bounds():
    table = pa.table({"t": pa.array([0, 400 * 24 * 3600 * 10**6], pa.timestamp("us", tz="UTC"))})
    finding = one({"rule": "range", "column": "t", "max": "1970-06-01 00:00:00"}, table=table)
    assert finding.violations == 1


def test_report_document():
    document = report(findings([{"rule": "not_null", "columns": ["carrier"]}]), rows=5)
    assert document["passed"] is False and document["rows"] == 5
    (rule,) = document["rules"]
    assert rule == {"rule": "not_null", "columns": ["carrier"], "severity": "error",
                    "status": "failed", "violations": 1, "detail": "are null",
                    "examples": []}  # fmt: skip
