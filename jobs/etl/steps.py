"""The transform steps as kernels on Arrow tables; both engines run these same kernels.

A step's `apply` works on any slice of rows, except where `shuffle_keys` is set: then every
row sharing those keys must be in the slice (Dask shuffles on them first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput
from mlbatch.spec.etl import Cast, Dedupe, Join
from mlbatch_jobs.etl.coercion import coerce_table
from mlbatch_jobs.etl.expressions import Expression
from mlbatch_jobs.etl.reading import ORDER

Counts = dict[str, int]


@dataclass
class Step:
    """A step kernel: `apply(table) -> (table, counts)`."""

    label: str  # "step 2 join weather": names the step in messages, logs and metrics
    shuffle_keys: list[str] | None = field(default=None, init=False)

    def apply(self, table: pa.Table) -> tuple[pa.Table, Counts]:
        raise NotImplementedError

    def _require(self, table: pa.Table, columns: list[str], what: str = "the table") -> None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            available = ", ".join(c for c in table.column_names if c != ORDER)
            raise BadInput(f"{self.label}: no column {missing[0]!r} in {what} ({available})")


@dataclass
class RightSide:
    """A joined source, ready for lookups: one row per key, no null keys."""

    table: pa.Table  # the columns the join adds, already suffixed
    columns: list[pa.Array]  # the same, as arrays (taking from a ChunkedArray is slow)
    keys: list[pa.Array]  # the key columns, cast to the left side's key types
    # Multi-key joins only: per key its distinct values, and per key after the first the
    # distinct combined codes of the keys so far (the last level holds one per row).
    distinct: list[pa.Array] = field(default_factory=list)
    levels: list[pa.Array] = field(default_factory=list)


@dataclass
class JoinStep(Step):
    spec: Join = None
    right: RightSide = None

    def apply(self, table):
        self._require(table, self.spec.on)
        found = _lookup([table[k] for k in self.spec.on], self.right)
        found = found.combine_chunks() if isinstance(found, pa.ChunkedArray) else found
        # Cut like the table's chunks, so the new columns line up with the old ones: Arrow
        # filters a table whose columns share their chunks many times faster.
        rows, start = [], 0
        for chunk in table.column(0).chunks:
            rows.append(found.slice(start, len(chunk)))
            start += len(chunk)
        for name, column in zip(self.right.table.column_names, self.right.columns, strict=True):
            taken = pa.chunked_array([column.take(part) for part in rows], type=column.type)
            table = table.append_column(name, taken)
        unmatched = found.null_count
        if self.spec.how == "inner" and unmatched:
            table = filter_rows(table, pa.chunked_array([part.is_valid() for part in rows]))
        return table, {"unmatched": unmatched}


@dataclass
class SelectStep(Step):
    columns: list[str] = None

    def apply(self, table):
        self._require(table, self.columns)
        order = [ORDER] if ORDER in table.column_names else []
        return table.select(self.columns + order), {}


@dataclass
class RenameStep(Step):
    mapping: dict[str, str] = None

    def apply(self, table):
        self._require(table, list(self.mapping))
        names = [self.mapping.get(n, n) for n in table.column_names]
        if len(set(names)) != len(names):
            clash = next(n for n in names if names.count(n) > 1)
            raise BadInput(f"{self.label}: two columns would be called {clash!r}")
        return table.rename_columns(names), {}


@dataclass
class DropStep(Step):
    columns: list[str] = None

    def apply(self, table):
        self._require(table, self.columns)
        return table.drop_columns(self.columns), {}


@dataclass
class FilterStep(Step):
    expression: Expression = None

    def apply(self, table):
        keep = self.expression.evaluate(table)
        if not pa.types.is_boolean(keep.type):
            raise BadInput(f"{self.label}: {self.expression.text!r} is {keep.type}, not true/false")
        if keep.null_count == 0 and pc.all(keep).as_py() is not False:
            return table, {}  # every row stays: no copy
        return filter_rows(table, pc.fill_null(keep, False)), {}


@dataclass
class DeriveStep(Step):
    expressions: dict[str, Expression] = None

    def apply(self, table):
        for name, expression in self.expressions.items():
            values = expression.evaluate(table)
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, values)
            else:
                table = table.append_column(name, values)
        return table, {}


@dataclass
class CastStep(Step):
    spec: Cast = None

    def apply(self, table):
        self._require(table, list(self.spec.columns))
        table, coercion = coerce_table(
            table, self.spec.columns, policy=self.spec.on_error, where=self.label
        )
        return table, {f"bad_values.{name}": count for name, count in coercion.bad.items()}


@dataclass
class DedupeStep(Step):
    spec: Dedupe = None
    columns: list[str] = None  # the keys: spec.on, or every column

    def __post_init__(self):
        self.shuffle_keys = self.columns

    def apply(self, table):
        self._require(table, self.columns)
        pick = "min" if self.spec.keep == "first" else "max"
        kept = pa.TableGroupBy(table, self.columns, use_threads=False).aggregate([(ORDER, pick)])
        survivors = table.filter(pc.is_in(table[ORDER], value_set=kept[f"{ORDER}_{pick}"]))
        order = survivors[ORDER]
        if len(order) > 1 and not pc.all(pc.less(order[:-1], order[1:])).as_py():
            survivors = survivors.sort_by(ORDER)  # after a shuffle: back to input order
        return survivors, {}


@dataclass
class TargetStep(Step):
    """Rows without a value for the target cannot be learned from: they go. Without a
    target (scoring new rows) every row stays."""

    target: str | None = None

    def apply(self, table):
        if self.target is None or table[self.target].null_count == 0:
            return table, {}
        return filter_rows(table, pc.is_valid(table[self.target])), {}


def filter_rows(table: pa.Table, keep) -> pa.Table:
    """The rows where keep is true; column by column, a quarter faster than Table.filter."""
    return pa.Table.from_arrays([column.filter(keep) for column in table.columns],
                                schema=table.schema)  # fmt: skip


def prepare_right(step_label: str, spec: Join, source: pa.Table, left: pa.Schema):
    """The joined source as a RightSide, and how many of its rows were dropped and why."""
    right_keys = spec.right_on or spec.on
    for key in right_keys:
        if key not in source.column_names:
            raise BadInput(f"{step_label}: source {spec.source} has no column {key!r}")
    missing = [k for k in spec.on if k not in left.names]
    if missing:
        names = ", ".join(n for n in left.names if n != ORDER)
        raise BadInput(f"{step_label}: no column {missing[0]!r} in the table ({names})")
    valid = source[right_keys[0]].is_valid()
    for key in right_keys[1:]:
        valid = pc.and_(valid, source[key].is_valid())
    keyed = source.filter(valid)
    null_keys = source.num_rows - keyed.num_rows
    keyed = keyed.append_column("__row", pa.array(range(keyed.num_rows), pa.int64()))
    first = pa.TableGroupBy(keyed, right_keys, use_threads=False).aggregate([("__row", "min")])
    unique = keyed.take(pc.sort_indices(first["__row_min"]))
    duplicates = keyed.num_rows - unique.num_rows
    keys = []
    for left_key, right_key in zip(spec.on, right_keys, strict=True):
        wanted, found = left.field(left_key).type, unique[right_key].type
        try:
            if _kind(wanted) != _kind(found):
                raise pa.ArrowInvalid("different kinds of values never match")
            keys.append(unique[right_key].cast(wanted).combine_chunks())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise BadInput(
                f"{step_label}: key {left_key!r} is {wanted} in the table but {found} in "
                f"source {spec.source}: cast one of them (a cast step or columns:)"
            ) from None
    suffix = spec.suffix if spec.suffix is not None else f"_{spec.source}"
    added = unique.drop_columns([*right_keys, "__row"])
    added = added.rename_columns([n + suffix if n in left.names else n for n in added.column_names])
    distinct, levels = _encode_right(keys)
    added = added.combine_chunks()
    columns = [column.combine_chunks() for column in added.columns]
    right = RightSide(added, columns, keys, distinct, levels)
    return right, {"duplicate_keys_dropped": duplicates, "null_keys_dropped": null_keys}


def _encode_right(keys: list[pa.Array]) -> tuple[list, list]:
    """For several keys: (distinct values per key, combined codes per level).

    A row's code after key i is its position among the distinct codes of keys 0..i, so
    codes stay below rows² however many keys there are; the right side has one row per
    key combination, so the last level's positions are its row numbers.
    """
    if len(keys) == 1:
        return [], []
    distinct = [pc.unique(key) for key in keys]
    levels, code = [], pc.index_in(keys[0], value_set=distinct[0])
    for key, values in zip(keys[1:], distinct[1:], strict=True):
        combined = _combine(code, pc.index_in(key, value_set=values), len(values))
        levels.append(pc.unique(combined))
        code = pc.index_in(combined, value_set=levels[-1])
    return distinct, levels


def _lookup(left_keys: list, right: RightSide) -> pa.Array:
    """For each left row, the row of the right side with the same keys (null if none)."""
    left_keys = [_as_type(k, r.type) for k, r in zip(left_keys, right.keys, strict=True)]
    if not right.levels:
        return pc.index_in(left_keys[0], value_set=right.keys[0])
    code = pc.index_in(left_keys[0], value_set=right.distinct[0])
    for key, values, level in zip(left_keys[1:], right.distinct[1:], right.levels, strict=True):
        combined = _combine(code, pc.index_in(key, value_set=values), len(values))
        code = pc.index_in(combined, value_set=level)
    return code


def _combine(code: pa.Array, position: pa.Array, size: int) -> pa.Array:
    return pc.add(pc.multiply(code.cast(pa.int64()), size), position.cast(pa.int64()))


def _kind(kind: pa.DataType) -> str:
    """Keys of one kind can be compared after a cast (int32 with int64); others cannot."""
    for name, test in (("number", pa.types.is_integer), ("number", pa.types.is_floating),
                       ("text", pa.types.is_string), ("text", pa.types.is_large_string),
                       ("time", pa.types.is_timestamp), ("date", pa.types.is_date)):  # fmt: skip
        if test(kind):
            return name
    return str(kind)


def _as_type(values, kind: pa.DataType):
    return values if values.type == kind else values.cast(kind)
