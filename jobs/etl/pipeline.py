"""The etl stage: read the declared sources, join, derive, filter, validate, write Parquet."""

from __future__ import annotations

import ast
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch.errors import BadInput
from mlbatch.spec import Join
from mlbatch.stage import StageContext
from mlbatch.tasks import resolve_task
from mlbatch_jobs.etl.sources import read_source, source_format


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    etl = spec.etl
    tables: dict[str, pd.DataFrame] = {}
    for name, source in etl.sources.items():
        uri = source.location(ctx.layout.storage_uri)
        ctx.record_external(uri)
        tables[name] = read_source(name, uri, source_format(source, uri))
        print(f"read {name}: {len(tables[name]):,} rows x {tables[name].shape[1]} columns")
    ctx.metrics["rows_in"] = {name: len(table) for name, table in tables.items()}

    origin = {column: etl.main_source for column in tables[etl.main_source].columns}
    table = tables[etl.main_source]
    for join in etl.joins:
        table = join_source(table, tables[join.source], join, origin)
    table = parse_dates(table, etl.parse_dates)
    lineage = derive(table, etl.derive)
    rows_before = len(table)
    table = apply_filters(table, etl.filter)
    ctx.metrics["rows_filtered"] = rows_before - len(table)
    table = table.drop(columns=_existing(table, etl.drop, "etl.drop"))

    table, task = validate(table, ctx)
    if etl.sample_rows and len(table) > etl.sample_rows:
        table = table.sample(n=etl.sample_rows, random_state=etl.seed).sort_index()
    table = table.reset_index(drop=True)

    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), ctx.out_dir / "table.parquet")
    schema = {
        "target": spec.target,
        "task": task,
        "rows": len(table),
        "columns": {column: str(dtype) for column, dtype in table.dtypes.items()},
        "origin": {c: origin.get(c, "derived") for c in table.columns},
        "lineage": lineage,
        "known_after_prediction": spec.known_after_prediction,
        "id_columns": spec.id_columns,
    }
    (ctx.out_dir / "schema.json").write_text(json.dumps(schema, indent=2))
    ctx.metrics.update(rows=len(table), columns=table.shape[1], task=task)
    print(f"wrote {len(table):,} rows x {table.shape[1]} columns; task {task}")


def join_source(left: pd.DataFrame, right: pd.DataFrame, join: Join, origin: dict) -> pd.DataFrame:
    """Join one source on its keys; duplicate keys on the right are dropped, not multiplied."""
    for side, frame in (("main table", left), (join.source, right)):
        missing = [key for key in join.on if key not in frame.columns]
        if missing:
            raise BadInput(f"join with {join.source}: {side} has no column {missing[0]!r}")
    duplicates = int(right.duplicated(subset=join.on).sum())
    if duplicates:
        print(f"join with {join.source}: dropped {duplicates} rows with duplicate keys {join.on}")
        right = right.drop_duplicates(subset=join.on, keep="first")
    suffix = join.suffix if join.suffix is not None else f"_{join.source}"
    joined = left.merge(right, on=join.on, how=join.how, suffixes=("", suffix), validate="m:1")
    for column in joined.columns:
        origin.setdefault(column, join.source)
    print(f"joined {join.source} ({join.how} on {join.on}): {len(joined):,} rows")
    return joined


def parse_dates(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for column in _existing(table, columns, "etl.parse_dates"):
        if not pd.api.types.is_datetime64_any_dtype(table[column]):
            try:
                table[column] = pd.to_datetime(table[column], utc=True)
            except (ValueError, TypeError) as error:
                raise BadInput(
                    f"etl.parse_dates: column {column!r} is not a date: {error}"
                ) from None
    return table


def derive(table: pd.DataFrame, expressions: dict[str, str]) -> dict:
    """Add derived columns; return their lineage (which columns each one comes from)."""
    lineage = {}
    for column, expression in expressions.items():
        try:
            table[column] = table.eval(expression, engine="python")
        except Exception as error:
            raise BadInput(
                f"etl.derive.{column}: cannot evaluate {expression!r}: {error}"
            ) from None
        names = {n.id for n in ast.walk(ast.parse(expression)) if isinstance(n, ast.Name)}
        lineage[column] = {
            "expression": expression,
            "derived_from": sorted(n for n in names if n in table.columns and n != column),
        }
    return lineage


def apply_filters(table: pd.DataFrame, expressions: list[str]) -> pd.DataFrame:
    for expression in expressions:
        try:
            keep = table.eval(expression, engine="python")
        except Exception as error:
            raise BadInput(f"etl.filter: cannot evaluate {expression!r}: {error}") from None
        before = len(table)
        table = table[keep.fillna(False).astype(bool)]
        print(f"filter {expression!r}: kept {len(table):,} of {before:,} rows")
    return table


def validate(table: pd.DataFrame, ctx: StageContext) -> tuple[pd.DataFrame, str]:
    """The checks a data scientist relies on downstream; rows without a target go."""
    spec = ctx.spec
    if spec.target not in table.columns:
        raise BadInput(
            f"target column {spec.target!r} is not in the table "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    for field in ("known_after_prediction", "id_columns"):
        _existing(table, getattr(spec, field), field)
    missing_target = int(table[spec.target].isna().sum())
    if missing_target:
        print(f"dropped {missing_target:,} rows with no value for the target {spec.target!r}")
        table = table[table[spec.target].notna()]
    ctx.metrics["rows_missing_target"] = missing_target
    if table.empty:
        raise BadInput("no rows left after the filters and dropping rows without a target")
    return table, resolve_task(spec.task, table[spec.target])


def _existing(table: pd.DataFrame, columns: list[str], field: str) -> list[str]:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BadInput(f"{field}: column {missing[0]!r} is not in the table")
    return columns
