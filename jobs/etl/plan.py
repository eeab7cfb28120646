"""The plan: the spec's steps built against the sources' schemas and tried on empty tables
before any data is read, with the origin and lineage of every output column."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import BadInput
from mlbatch.spec import PipelineSpec
from mlbatch.spec.etl import AllowedRule, Step
from mlbatch_jobs.etl import steps as kernels
from mlbatch_jobs.etl.coercion import Coercion
from mlbatch_jobs.etl.expressions import Expression
from mlbatch_jobs.etl.files import SourceFile
from mlbatch_jobs.etl.reading import ORDER, SourceReader
from mlbatch_jobs.etl.validation import Validator


@dataclass
class Plan:
    """What the stage runs: the main source's reader, the step kernels, and what they make."""

    main: SourceReader
    steps: list[kernels.Step]  # the spec's steps, then dropping rows without a target
    schemas: list[pa.Schema]  # the table's schema after each step
    validator: Validator
    origin: dict[str, str]  # output column -> the source it came from, or "derived"
    lineage: dict[str, dict]  # derived output column -> {expression, derived_from}
    target: str | None  # None when scoring: rows to predict need no target, and none is dropped
    joins: dict[str, dict] = field(default_factory=dict)  # step label -> right rows dropped
    sources: dict[str, dict] = field(default_factory=dict)  # joined sources: rows, coercion

    @property
    def output(self) -> pa.Schema:
        """The output's schema (without the input-order column)."""
        schema = self.schemas[-1]
        return schema.remove(schema.get_field_index(ORDER)) if ORDER in schema.names else schema


def build_plan(spec: PipelineSpec, files: dict[str, list[SourceFile]]) -> Plan:
    """Read the joined sources, build every step and try it on an empty table."""
    etl = spec.etl
    transform = etl.transform_steps()
    main = _open_reader(etl.main_source, etl, files)
    main.with_order = any(step.dedupe is not None for step in transform)
    needed = {s.join.source for s in transform if s.join is not None}
    needed |= {r.source for r in etl.validation if isinstance(r, AllowedRule) and r.source}
    tables, sources = {}, {}
    for name in sorted(needed):
        tables[name], coercion = read_whole(_open_reader(name, etl, files))
        sources[name] = {"rows": tables[name].num_rows, "bad_values": coercion.bad,
                         "rows_dropped": coercion.rows_dropped}  # fmt: skip
    lineage = Lineage({c: etl.main_source for c in main.types})
    schema, built, schemas, joins = main.schema(), [], [], {}
    for number, step in enumerate(transform, 1):
        kernel = _kernel(number, step, schema, tables, joins)
        schema = kernel.apply(schema.empty_table())[0].schema
        lineage.track(step, kernel, schema)
        built.append(kernel)
        schemas.append(schema)
    scoring = spec.predict is not None
    _check_columns(spec, schema, scoring=scoring)
    # Scoring keeps every row (each needs a prediction); the step stays, so a plan always
    # has one and the log says what happened.
    label = "keep every row (scoring)" if scoring else "drop rows without a target"
    built.append(kernels.TargetStep(label=label, target=None if scoring else spec.target))
    schemas.append(schema)
    output = [n for n in schema.names if n != ORDER]
    return Plan(
        main=main, steps=built, schemas=schemas,
        validator=Validator(etl.validation, _allowed_values(etl.validation, tables, schema)),
        origin={c: lineage.origin.get(c, "derived") for c in output},
        lineage={c: v for c, v in lineage.derived.items() if c in output},
        target=None if scoring else spec.target, joins=joins, sources=sources,
    )  # fmt: skip


def _open_reader(name: str, etl, files: dict[str, list[SourceFile]]) -> SourceReader:
    reader = SourceReader.open(name, etl.sources[name], files[name])
    if reader.dialect is not None:
        print(f"source {name}: {reader.dialect.describe()}")
    return reader


def read_whole(reader: SourceReader) -> tuple[pa.Table, Coercion]:
    """Every file of a source in one table (the sources that are joined are read so)."""
    tables, total = [], Coercion(policy=reader.source.on_error)
    for index in range(len(reader.files)):
        table, coercion = reader.read_file(index)
        tables.append(table)
        for column, count in coercion.bad.items():
            total.bad[column] = total.bad.get(column, 0) + count
        total.rows_dropped += coercion.rows_dropped
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise BadInput(f"source {reader.name}: no rows in {', '.join(f.uri for f in reader.files)}")
    return table, total


def _kernel(number: int, step: Step, schema: pa.Schema, tables: dict, joins: dict):
    kind, value = step.kind, step.value
    label = f"step {number} {kind}"
    match kind:
        case "join":
            label += f" {value.source}"
            right, dropped = kernels.prepare_right(label, value, tables[value.source], schema)
            joins[label] = dropped
            return kernels.JoinStep(label=label, spec=value, right=right)
        case "select":
            return kernels.SelectStep(label=label, columns=value)
        case "rename":
            return kernels.RenameStep(label=label, mapping=value)
        case "drop":
            return kernels.DropStep(label=label, columns=value)
        case "filter":
            return kernels.FilterStep(label=label, expression=Expression(value, where=label))
        case "derive":
            expressions = {
                name: Expression(text, where=f"{label} {name}") for name, text in value.items()
            }
            return kernels.DeriveStep(label=label, expressions=expressions)
        case "dedupe":
            columns = value.on or [n for n in schema.names if n != ORDER]
            return kernels.DedupeStep(label=label, spec=value, columns=columns)
        case "cast":
            return kernels.CastStep(label=label, spec=value)
    raise AssertionError(kind)


class Lineage:
    """Where each column came from, followed through joins, renames and derivations."""

    def __init__(self, origin: dict[str, str]):
        self.origin = origin
        self.derived: dict[str, dict] = {}

    def track(self, step: Step, kernel: kernels.Step, schema: pa.Schema) -> None:
        """Follow one step; `schema` is the table's schema after it."""
        if step.join is not None:
            for column in kernel.right.table.column_names:
                self.origin[column] = step.join.source
        elif step.rename is not None:
            mapping = step.rename
            self.origin = {mapping.get(c, c): s for c, s in self.origin.items()}
            self.derived = {
                mapping.get(c, c): {**entry, "derived_from": sorted(
                    mapping.get(d, d) for d in entry["derived_from"])}
                for c, entry in self.derived.items()
            }  # fmt: skip
        elif step.derive is not None:
            for name, expression in kernel.expressions.items():
                sources = set(expression.columns)
                for column in expression.columns:
                    sources |= set(self.derived.get(column, {}).get("derived_from", []))
                self.derived[name] = {"expression": expression.text,
                                      "derived_from": sorted(sources)}  # fmt: skip
                self.origin[name] = "derived"
        present = set(schema.names)
        self.origin = {c: s for c, s in self.origin.items() if c in present}


def _check_columns(spec: PipelineSpec, schema: pa.Schema, *, scoring: bool) -> None:
    """Columns the spec names must exist; when scoring, not the target nor those known only
    after the prediction time (new rows have neither)."""
    names = [n for n in schema.names if n != ORDER]
    if spec.target not in names and not scoring:
        raise BadInput(
            f"target column {spec.target!r} is not in the table (columns: {', '.join(names)})"
        )
    for key in ("id_columns",) if scoring else ("known_after_prediction", "id_columns"):
        for column in getattr(spec, key):
            if column not in names:
                raise BadInput(f"{key}: column {column!r} is not in the table")
    for column in spec.etl.output.partition_by:
        if column not in names:
            raise BadInput(f"etl.output.partition_by: column {column!r} is not in the table")


def _allowed_values(rules: list, tables: dict, schema: pa.Schema) -> dict[int, pa.Array]:
    allowed = {}
    for index, rule in enumerate(rules):
        if isinstance(rule, AllowedRule) and rule.source:
            column = rule.source_column or rule.column
            table = tables[rule.source]
            if column not in table.column_names:
                raise BadInput(f"etl.validation: source {rule.source} has no column {column!r}")
            values = pc.unique(table[column])
            if rule.column in schema.names:
                wanted = schema.field(rule.column).type
                try:
                    values = values.cast(wanted)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise BadInput(
                        f"etl.validation: {rule.source}.{column} is {values.type}, "
                        f"{rule.column} is {wanted}"
                    ) from None
            allowed[index] = values
    return allowed
