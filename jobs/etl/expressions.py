"""Expressions over columns, written as in pandas (`arr_delay > 15`,
`origin.isin(["JFK", "LGA"])`, `time_hour.dt.month`), evaluated with Arrow compute kernels.

Nulls propagate as in SQL: `x > 15` is null where x is null, and a filter keeps the rows
where its expression is true. docs/etl.md lists what is supported.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput
from mlbatch_jobs.etl.coercion import ARROW_TYPES

BACKTICKED = re.compile(r"`([^`]+)`")
COMPARISONS = {
    ast.Eq: pc.equal, ast.NotEq: pc.not_equal, ast.Lt: pc.less, ast.LtE: pc.less_equal,
    ast.Gt: pc.greater, ast.GtE: pc.greater_equal,
}  # fmt: skip
DATE_PARTS = {
    "year": pc.year, "month": pc.month, "day": pc.day, "hour": pc.hour, "minute": pc.minute,
    "second": pc.second, "dayofweek": pc.day_of_week, "weekday": pc.day_of_week,
    "dayofyear": pc.day_of_year, "quarter": pc.quarter,
    "date": lambda x: pc.cast(x, pa.date32()),
}  # fmt: skip
TEXT_METHODS = {
    "lower": pc.utf8_lower, "upper": pc.utf8_upper, "strip": pc.utf8_trim_whitespace,
    "len": pc.utf8_length,
    "contains": lambda x, pattern: pc.match_substring_regex(x, pattern),
    "startswith": lambda x, prefix: pc.starts_with(x, prefix),
    "endswith": lambda x, suffix: pc.ends_with(x, suffix),
    "slice": lambda x, start=0, stop=None: pc.utf8_slice_codeunits(x, start, stop),
    "replace": lambda x, old, new: pc.replace_substring(x, old, new),
}  # fmt: skip
FUNCTIONS = {
    "abs": pc.abs, "sqrt": pc.sqrt, "exp": pc.exp, "log": pc.ln, "log10": pc.log10,
    "round": lambda x, digits=0: pc.round(x, digits),
    "coalesce": pc.coalesce,
    "where": lambda condition, yes, no: pc.if_else(condition, yes, no),
    "concat": lambda *parts: pc.binary_join_element_wise(*parts, ""),
}  # fmt: skip


class Expression:
    """A parsed expression: the columns it reads and a way to evaluate it on a table."""

    def __init__(self, text: str, *, where: str):
        self.text = text
        self.where = where
        self._names: dict[str, str] = {}

        def placeholder(match: re.Match) -> str:
            name = f"__column_{len(self._names)}"
            self._names[name] = match.group(1)
            return name

        try:
            self._tree = ast.parse(BACKTICKED.sub(placeholder, text).strip(), mode="eval").body
        except SyntaxError as error:
            raise BadInput(f"{where}: {text!r} is not an expression: {error.msg}") from None
        called = {id(n.func) for n in ast.walk(self._tree) if isinstance(n, ast.Call)}
        self.columns = sorted(
            {
                self._names.get(n.id, n.id)
                for n in ast.walk(self._tree)
                if isinstance(n, ast.Name) and id(n) not in called
            }
        )

    def evaluate(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """The expression's values, one per row."""
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            raise BadInput(f"{self.where}: {self.text!r}: no column {missing[0]!r} in the table")
        try:
            value = self._eval(self._tree, table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            message = " ".join(str(error).split())
            raise BadInput(f"{self.where}: {self.text!r}: {message}") from None
        if isinstance(value, pa.ChunkedArray | pa.Array):
            return value
        chunks = table.column(0).chunks if table.num_columns else []
        return pa.chunked_array([pa.repeat(pa.scalar(value), len(c)) for c in chunks],
                                type=pa.scalar(value).type)  # fmt: skip

    def _eval(self, node: ast.AST, table: pa.Table) -> Any:
        match node:
            case ast.Name(id=name):
                return table[self._names.get(name, name)]
            case ast.Constant(value=value):
                return value
            case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
                return [self._eval(item, table) for item in items]
            case ast.BoolOp(op=op, values=values):
                combine = pc.and_kleene if isinstance(op, ast.And) else pc.or_kleene
                result = self._eval(values[0], table)
                for value in values[1:]:
                    result = combine(result, self._eval(value, table))
                return result
            case ast.UnaryOp(op=op, operand=operand):
                value = self._eval(operand, table)
                if isinstance(op, ast.USub):
                    return pc.negate(value) if _is_array(value) else -value
                if isinstance(op, ast.UAdd):
                    return value
                return pc.invert(value) if _is_array(value) else not value
            case ast.BinOp(left=left, op=op, right=right):
                return _arithmetic(op, self._eval(left, table), self._eval(right, table))
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                return self._compare(left, ops, comparators, table)
            case ast.IfExp(test=test, body=body, orelse=orelse):
                values = [self._eval(n, table) for n in (test, body, orelse)]
                return pc.if_else(*values)
            case ast.Attribute(value=ast.Attribute(attr="dt", value=inner), attr=part):
                if part not in DATE_PARTS:
                    raise self._unsupported(f".dt.{part}")
                return DATE_PARTS[part](self._eval(inner, table))
            case ast.Call(func=func, args=args, keywords=keywords):
                arguments = [self._eval(a, table) for a in args]
                options = {k.arg: self._eval(k.value, table) for k in keywords}
                return self._call(func, arguments, options, table)
        raise self._unsupported(type(node).__name__)

    def _compare(self, left, ops, comparators, table: pa.Table):
        result, current = None, self._eval(left, table)
        for op, node in zip(ops, comparators, strict=True):
            other = self._eval(node, table)
            if isinstance(op, ast.In | ast.NotIn):
                step = _isin(current, other)
                step = pc.invert(step) if isinstance(op, ast.NotIn) else step
            elif type(op) in COMPARISONS:
                a, b = _align(current, other)
                step = COMPARISONS[type(op)](a, b)
            else:
                raise self._unsupported(type(op).__name__)
            result = step if result is None else pc.and_kleene(result, step)
            current = other
        return result

    def _call(self, func: ast.AST, args: list, options: dict, table: pa.Table):
        match func:
            case ast.Name(id=name) if name in FUNCTIONS:
                return FUNCTIONS[name](*args, **options)
            case ast.Attribute(value=ast.Attribute(attr="str", value=inner), attr=method):
                if method not in TEXT_METHODS:
                    raise self._unsupported(f".str.{method}()")
                return TEXT_METHODS[method](self._eval(inner, table), *args, **options)
            case ast.Attribute(value=inner, attr=method):
                return _method(method, self._eval(inner, table), args, options, self)
        raise self._unsupported(ast.unparse(func) + "()")

    def _unsupported(self, what: str) -> BadInput:
        return BadInput(f"{self.where}: {self.text!r}: {what} is not supported (docs/etl.md)")


def _method(name: str, value, args: list, options: dict, expression: Expression):
    """The pandas Series methods expressions may call."""
    if name in ("isna", "isnull"):
        return pc.is_null(value, nan_is_null=True)
    if name in ("notna", "notnull"):
        return pc.invert(pc.is_null(value, nan_is_null=True))
    if name == "isin":
        return _isin(value, args[0])
    if name == "between":
        low, high = (_align(value, bound)[1] for bound in args[:2])
        return pc.and_kleene(pc.greater_equal(value, low), pc.less_equal(value, high))
    if name == "fillna":
        return pc.if_else(pc.is_null(value, nan_is_null=True), _align(value, args[0])[1], value)
    if name == "abs":
        return pc.abs(value)
    if name == "round":
        return pc.round(value, *args, **options)
    if name == "clip":
        lower, upper = (args + [None, None])[:2]
        lower, upper = options.get("lower", lower), options.get("upper", upper)
        value = value if lower is None else pc.max_element_wise(value, lower, skip_nulls=False)
        return value if upper is None else pc.min_element_wise(value, upper, skip_nulls=False)
    if name == "astype" and args and args[0] in ARROW_TYPES:
        return pc.cast(value, ARROW_TYPES[args[0]])
    raise expression._unsupported(f".{name}()")


def _is_array(value) -> bool:
    return isinstance(value, pa.ChunkedArray | pa.Array)


def _arithmetic(op: ast.operator, a, b):
    if isinstance(op, ast.Add) and (_is_text(a) or _is_text(b)):
        return pc.binary_join_element_wise(a, b, "")
    if isinstance(op, ast.BitAnd):
        return pc.and_kleene(a, b)
    if isinstance(op, ast.BitOr):
        return pc.or_kleene(a, b)
    if isinstance(op, ast.BitXor):
        return pc.xor(a, b)
    if isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
        a, b = _as_float(a), _as_float(b)  # as in pandas: 7 / 2 is 3.5
        quotient = pc.divide(a, b)
        if isinstance(op, ast.Div):
            return quotient
        whole = pc.floor(quotient)
        return whole if isinstance(op, ast.FloorDiv) else pc.subtract(a, pc.multiply(whole, b))
    functions = {ast.Add: pc.add, ast.Sub: pc.subtract, ast.Mult: pc.multiply, ast.Pow: pc.power}
    if type(op) not in functions:
        raise pa.ArrowNotImplementedError(f"operator {type(op).__name__} is not supported")
    return functions[type(op)](a, b)


def _is_text(value) -> bool:
    if _is_array(value):
        return pa.types.is_string(value.type) or pa.types.is_large_string(value.type)
    return isinstance(value, str)


def _as_float(value):
    if _is_array(value) and pa.types.is_integer(value.type):
        return pc.cast(value, pa.float64())
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _isin(value, candidates) -> pa.Array:
    if not isinstance(candidates, list):
        raise pa.ArrowInvalid("isin and `in` take a list of values")
    values = [_align(value, c)[1] for c in candidates]
    value_set = pa.array(
        [v.as_py() if isinstance(v, pa.Scalar) else v for v in values],
        type=value.type if _is_array(value) else None,
    )
    return pc.is_in(value, value_set=value_set)


def _align(a, b):
    """Literals compared with date and timestamp columns become dates and timestamps."""
    if _is_array(a) and isinstance(b, str):
        return a, literal_like(b, a.type)
    if _is_array(b) and isinstance(a, str):
        return literal_like(a, b.type), b
    return a, b


def literal_like(value, kind: pa.DataType):
    """A literal as a value of a column's type (text becomes a date or a timestamp)."""
    if pa.types.is_timestamp(kind):
        naive = pc.cast(pa.array([value]), pa.timestamp(kind.unit))
        if kind.tz is not None:
            naive = pc.assume_timezone(naive, kind.tz)
        return naive[0]
    if pa.types.is_date(kind):
        return pc.cast(pa.array([value]), kind)[0]
    return value
