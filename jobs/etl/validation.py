"""Validation rules checked on the output: per-slice counts that add up across partitions,
then one report (validation.json) that names each rule, column, count and examples."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.spec.etl import (
    AllowedRule,
    NotNullRule,
    RangeRule,
    RequiredRule,
    RowCountRule,
    TypeRule,
    UniqueRule,
    ValidationRule,
)
from mlbatch_jobs.etl.coercion import type_name
from mlbatch_jobs.etl.expressions import literal_like

EXAMPLES = 5
WHOLE_TABLE_RULES = ("required", "type", "row_count")  # their detail says it all
Partial = dict[str, tuple[int, list]]  # check id -> (rows that broke it, example values)


@dataclass
class Finding:
    """One rule's result on the whole output."""

    rule: str  # "range", "not_null", ...
    columns: list[str]
    severity: str
    violations: int  # rows that broke the rule
    detail: str  # what breaking it means: "outside [-60, 1500]"
    examples: list = field(default_factory=list)

    @property
    def status(self) -> str:
        return (
            "passed"
            if not self.violations
            else ("failed" if self.severity == "error" else "warned")
        )

    def describe(self) -> str:
        columns = ", ".join(self.columns)
        if self.rule in WHOLE_TABLE_RULES:
            return f"{self.rule}({columns}): {self.detail}"
        examples = f", e.g. {', '.join(map(repr, self.examples[:3]))}" if self.examples else ""
        return f"{self.rule}({columns}): {self.violations:,} rows {self.detail}{examples}"


class Validator:
    """The spec's rules, with the allowed values of `allowed: {source: ...}` resolved."""

    def __init__(self, rules: list[ValidationRule], allowed: dict[int, pa.Array]):
        self.rules = rules
        self.allowed = allowed  # rule index -> the values a source allows

    def schema_findings(self, schema: pa.Schema) -> list[Finding]:
        """Rules decided by the output's columns alone (required, type, missing columns)."""
        findings = []
        for rule in self.rules:
            if isinstance(rule, RequiredRule):
                missing = [c for c in rule.columns if c not in schema.names]
                detail = f"no column {missing[0]!r} in the table" if missing else "all present"
                findings.append(_finding(rule, rule.columns, len(missing), detail))
            elif isinstance(rule, TypeRule):
                for column, wanted in rule.columns.items():
                    actual = (
                        type_name(schema.field(column).type) if column in schema.names else None
                    )
                    detail = f"is {actual}" + ("" if actual == wanted else f", not {wanted}")
                    findings.append(_finding(rule, [column], int(actual != wanted), detail))
            else:
                missing = [c for c in _columns(rule) if c not in schema.names]
                if missing:
                    findings.append(_finding(rule, missing, 1, "in a column the table lacks"))
        return findings

    def check_rows(self, table: pa.Table) -> Partial:
        """Counts of row-level rules (not_null, range, allowed) on one slice of the output."""
        partial: Partial = {}
        for index, rule in enumerate(self.rules):
            if any(c not in table.column_names for c in _columns(rule)):
                continue  # a schema finding already
            if isinstance(rule, NotNullRule):
                for column in rule.columns:
                    broken = pc.is_null(table[column], nan_is_null=True)
                    partial[f"{index}:{column}"] = _count(table[column], broken, examples=False)
            elif isinstance(rule, RangeRule):
                values = table[rule.column]
                broken = None
                for bound, compare in ((rule.min, pc.less), (rule.max, pc.greater)):
                    if bound is not None:
                        outside = compare(values, literal_like(bound, values.type))
                        broken = outside if broken is None else pc.or_kleene(broken, outside)
                partial[str(index)] = _count(values, pc.fill_null(broken, False))
            elif isinstance(rule, AllowedRule):
                values = table[rule.column]
                allowed = self.allowed.get(index)
                if allowed is None:
                    allowed = pa.array(rule.values).cast(values.type)
                broken = pc.and_(
                    pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed))
                )
                partial[str(index)] = _count(values, broken)
        return partial

    def unique_rules(self) -> list[tuple[int, list[str]]]:
        """(rule index, key columns) of the unique rules: each engine checks them its way."""
        return [(i, r.columns) for i, r in enumerate(self.rules) if isinstance(r, UniqueRule)]

    def findings(
        self, schema: pa.Schema, rows: int, partial: Partial, duplicates: dict[int, tuple]
    ) -> list[Finding]:
        """Every rule's finding, from the merged counts of all slices."""
        findings = self.schema_findings(schema)
        broken_columns = {
            c for f in findings if f.detail.startswith("in a column") for c in f.columns
        }
        for index, rule in enumerate(self.rules):
            if isinstance(rule, RequiredRule | TypeRule) or broken_columns & set(_columns(rule)):
                continue
            if isinstance(rule, NotNullRule):
                for column in rule.columns:
                    count, _ = partial.get(f"{index}:{column}", (0, []))
                    findings.append(_finding(rule, [column], count, "are null"))
            elif isinstance(rule, RangeRule):
                count, examples = partial.get(str(index), (0, []))
                detail = f"outside [{_bound(rule.min)}, {_bound(rule.max)}]"
                findings.append(_finding(rule, [rule.column], count, detail, examples))
            elif isinstance(rule, AllowedRule):
                count, examples = partial.get(str(index), (0, []))
                where = (
                    f"in {rule.source}.{rule.source_column or rule.column}"
                    if rule.source
                    else "allowed"
                )
                findings.append(_finding(rule, [rule.column], count, f"not {where}", examples))
            elif isinstance(rule, UniqueRule):
                count, examples = duplicates.get(index, (0, []))
                detail = "repeat the key of an earlier row"
                findings.append(_finding(rule, rule.columns, count, detail, examples))
            elif isinstance(rule, RowCountRule):
                low, high = rule.min or 0, rule.max
                outside = rows < low or (high is not None and rows > high)
                detail = f"{rows:,} rows, expected [{low}, {_bound(high)}]"
                findings.append(_finding(rule, [], rows if outside else 0, detail))
        return findings


def merge_partials(partials: list[Partial]) -> Partial:
    """Counts added up, examples merged (the smallest few)."""
    merged: Partial = {}
    for partial in partials:
        for key, (count, examples) in partial.items():
            total, seen = merged.get(key, (0, []))
            merged[key] = (total + count, smallest([seen, examples]))
    return merged


def smallest(example_lists: list[list]) -> list:
    """The first few of several lists of examples, in sorted order: the same examples
    however the rows were partitioned."""
    distinct = []
    for examples in example_lists:
        for example in examples:
            if example not in distinct:
                distinct.append(example)
    return sorted(distinct, key=_sort_key)[:EXAMPLES]


def _sort_key(value) -> tuple:
    values = tuple(value.values()) if isinstance(value, dict) else (value,)
    return tuple((v is None, "" if v is None else v) for v in values)


def duplicate_keys(table: pa.Table, columns: list[str]) -> tuple[int, list]:
    """(rows that repeat an earlier row's key, a few such keys) in a table holding every
    row of each key."""
    codes = key_codes(table, columns)
    counts = pc.value_counts(codes)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return 0, []
    extra = int(pc.sum(repeated.field("counts")).as_py()) - len(repeated)
    keys = table.select(columns).filter(pc.is_in(codes, value_set=repeated.field("values")))
    examples = [e if len(columns) > 1 else e[columns[0]] for e in keys.to_pylist()]
    return extra, smallest([examples])


def key_codes(table: pa.Table, columns: list[str]) -> pa.ChunkedArray:
    """One int64 per row, equal exactly when the rows' keys are equal (nulls included)."""
    code, size = None, 1
    for column in columns:
        positions, distinct = _positions(table[column])
        if code is None:
            code = positions
        else:
            if size * distinct >= 1 << 62:  # renumber the codes so far before they overflow
                code, size = _renumber(code)
            code = pc.add(pc.multiply(code, distinct), positions)
        size *= distinct
    return code


def _positions(values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """(a number per value, how many numbers there can be): for integers in a small range
    the offset from the smallest (no hashing), otherwise the dictionary position."""
    if pa.types.is_integer(values.type):
        low, high = pc.min_max(values).values()
        low, high = low.as_py(), high.as_py()
        if low is not None and high - low < 1 << 24:
            offsets = pc.subtract(values.cast(pa.int64()), low)
            return pc.fill_null(offsets, high - low + 1), high - low + 2
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    positions = pa.chunked_array([c.indices for c in encoded.chunks], type=pa.int32())
    distinct = max((len(c.dictionary) for c in encoded.chunks), default=0) + 1
    return positions.cast(pa.int64()), distinct


def _renumber(code: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    encoded = pc.dictionary_encode(code)
    positions = pa.chunked_array([c.indices for c in encoded.chunks], type=pa.int32())
    return positions.cast(pa.int64()), max(len(c.dictionary) for c in encoded.chunks) + 1


def report(findings: list[Finding], rows: int) -> dict:
    """validation.json."""
    return {
        "passed": not any(f.status == "failed" for f in findings),
        "rows": rows,
        "rules": [
            {
                "rule": f.rule,
                "columns": f.columns,
                "severity": f.severity,
                "status": f.status,
                "violations": f.violations,
                "detail": f.detail,
                "examples": f.examples,
            }
            for f in findings
        ],  # fmt: skip
    }


def _finding(rule, columns, violations, detail, examples=()) -> Finding:
    return Finding(rule.rule, list(columns), rule.severity, violations, detail, list(examples))


def _columns(rule) -> list[str]:
    if isinstance(rule, RangeRule | AllowedRule):
        return [rule.column]
    return list(getattr(rule, "columns", []) or [])


def _count(values, broken, *, examples: bool = True) -> tuple[int, list]:
    count = int(pc.sum(broken).as_py() or 0)
    if not count or not examples:
        return count, []
    return count, pc.unique(pc.filter(values, broken)).sort().slice(0, EXAMPLES).to_pylist()


def _bound(value) -> str:
    return "" if value is None else str(value)
