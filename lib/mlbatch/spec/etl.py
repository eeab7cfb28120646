"""The `etl:` section: sources with their types, ordered transform steps, validation rules,
output and engine (docs/etl.md has the full reference)."""

from __future__ import annotations

import codecs
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from mlbatch.spec.base import Model

TypeName = Literal[
    "string", "bool", "int8", "int16", "int32", "int64", "float32", "float64", "date", "timestamp"
]  # fmt: skip
CSV_KEYS = ("delimiter", "decimal", "encoding", "quoted_newlines")  # a source's dialect
OnError = Literal["error", "null", "drop"]  # what to do with a value that does not parse
Severity = Literal["error", "warn"]


class ColumnType(Model):
    """A declared column type; `int64` is shorthand for `{type: int64}`."""

    type: TypeName
    format: str | None = Field(
        default=None, description="strptime format of a date or timestamp, e.g. %d/%m/%Y %H:%M"
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone: values without an offset are local times there; the column "
        "comes out timezone-aware in this zone",
    )

    @model_validator(mode="after")
    def _fits_the_type(self) -> ColumnType:
        if self.format is not None and self.type not in ("date", "timestamp"):
            raise ValueError(f"format applies to date and timestamp columns, not {self.type}")
        if self.timezone is not None:
            if self.type != "timestamp":
                raise ValueError(f"timezone applies to timestamp columns, not {self.type}")
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self


def _column_types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


ColumnTypes = Annotated[dict[str, ColumnType], BeforeValidator(_column_types)]


class Source(Model):
    uri: str = Field(
        description="a file, a glob (raw/*.csv.gz, ** crosses folders) or a prefix (ends "
        "with /): relative to the storage root, an absolute path, or a URI"
    )
    format: Literal["auto", "csv", "parquet", "jsonl", "xlsx"] = Field(
        default="auto", description="auto: from the file extension (.gz, .zip, ... stripped)"
    )
    columns: ColumnTypes = Field(
        default_factory=dict, description="declared types; other columns are inferred"
    )
    on_error: OnError = Field(
        default="error", description="a value that does not parse as its column's type"
    )
    # How CSV files are written: what is not set here is sniffed from the first MiB.
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="CSV: the separator (, ; tab |)"
    )
    decimal: Literal[".", ","] | None = Field(
        default=None, description="CSV: the decimal mark (a comma needs another separator)"
    )
    encoding: str | None = Field(
        default=None,
        description="CSV: a Python codec name; default UTF-8 (a BOM is skipped), else cp1252",
    )
    quoted_newlines: bool | None = Field(
        default=None,
        description="CSV: a quoted field may span lines (on Dask each file is then one block)",
    )
    sheet: str | Annotated[int, Field(ge=0)] | None = Field(
        default=None, description=".xlsx: a sheet's name or position (from 0); default the first"
    )

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str | None) -> str | None:
        """A codec Python knows that writes newlines and separators as ASCII does (the files
        are cut at newline bytes): UTF-8, cp1252, latin-1, ... not UTF-16."""
        if value is None:
            return None
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        if "\n,;\t|".encode(name) != b"\n,;\t|":
            raise ValueError(f"encoding {value!r} is not ASCII-compatible; save the file as UTF-8")
        return name

    @model_validator(mode="after")
    def _keys_fit_the_format(self) -> Source:
        misplaced = self.keys_not_for(self.format) if self.format != "auto" else []
        if misplaced:
            raise ValueError(f"{key_scope(misplaced[0])} sources, not {self.format}")
        if self.delimiter is not None and self.delimiter == self.decimal:
            raise ValueError(f"delimiter and decimal are both {self.delimiter!r}")
        return self

    def keys_not_for(self, fmt: str) -> list[str]:
        """The format-specific keys set here that a file of format fmt has no use for."""
        # Specs written before the dialect keys hold `delimiter: ","` for every source (it
        # was the default): other formats ignore that one value, so their runs still load.
        csv = [k for k in CSV_KEYS if getattr(self, k) is not None and k != "delimiter"]
        csv += ["delimiter"] if self.delimiter not in (None, ",") else []
        return (csv if fmt != "csv" else []) + (
            ["sheet"] if self.sheet is not None and fmt != "xlsx" else []
        )

    def dialect_keys(self) -> dict:
        """The CSV dialect this source declares (None: sniffed)."""
        return {key: getattr(self, key) for key in CSV_KEYS}

    def location(self, storage_uri: str) -> str:
        """The source's URI: relative locations are under the storage root."""
        from mlbatch import storage

        if "://" in self.uri or self.uri.startswith("/"):
            return storage.resolve_uri(self.uri)
        return storage.join(storage_uri, self.uri)


def key_scope(key: str) -> str:
    """How an error about a key on the wrong format begins: "sheet applies to xlsx"."""
    return f"{key} applies to {'xlsx' if key == 'sheet' else 'CSV'}"


class Join(Model):
    source: str = Field(description="name of a source in etl.sources")
    on: list[str] = Field(min_length=1, description="key columns of the table so far")
    right_on: list[str] | None = Field(
        default=None, description="the source's key columns when named differently"
    )
    how: Literal["left", "inner"] = "left"
    suffix: str | None = Field(
        default=None,
        description="added to clashing columns of the joined source; default _<source>",
    )

    @model_validator(mode="after")
    def _keys_pair_up(self) -> Join:
        if self.right_on is not None and len(self.right_on) != len(self.on):
            raise ValueError("right_on must name as many columns as on")
        return self


class Dedupe(Model):
    on: list[str] | None = Field(default=None, description="key columns; default all columns")
    keep: Literal["first", "last"] = Field(default="first", description="in input order")


class Cast(Model):
    columns: ColumnTypes = Field(min_length=1)
    on_error: OnError = "error"


STEP_KINDS = ("join", "select", "rename", "drop", "filter", "derive", "dedupe", "cast")


class Step(Model):
    """One transform step: a mapping with exactly one key, its kind (`- filter: x > 0`)."""

    join: Join | None = None
    select: list[str] | None = Field(
        default=None, min_length=1, description="keep these columns, in this order"
    )
    rename: dict[str, str] | None = Field(default=None, min_length=1, description="old -> new")
    drop: list[str] | None = Field(default=None, min_length=1)
    filter: str | None = Field(
        default=None, min_length=1, description="keep rows where this expression is true"
    )
    derive: dict[str, str] | None = Field(
        default=None, min_length=1, description="new column -> expression, in order"
    )
    dedupe: Dedupe | None = None
    cast: Cast | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [kind for kind in STEP_KINDS if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step has exactly one key, one of: {', '.join(STEP_KINDS)}")
        return self

    @model_serializer(mode="wrap")
    def _only_its_key(self, handler: Any) -> dict:
        return {self.kind: handler(self)[self.kind]}

    @property
    def kind(self) -> str:
        return next(kind for kind in STEP_KINDS if getattr(self, kind) is not None)

    @property
    def value(self) -> Any:
        return getattr(self, self.kind)


class Rule(Model):
    severity: Severity = Field(default="error", description="warn: reported, not fatal")


class RequiredRule(Rule):
    rule: Literal["required"]
    columns: list[str] = Field(min_length=1)


class TypeRule(Rule):
    rule: Literal["type"]
    columns: dict[str, TypeName] = Field(min_length=1)


class NotNullRule(Rule):
    rule: Literal["not_null"]
    columns: list[str] = Field(min_length=1)


class RangeRule(Rule):
    rule: Literal["range"]
    column: str
    min: float | str | None = Field(default=None, description="inclusive; a string for dates")
    max: float | str | None = Field(default=None, description="inclusive")

    @model_validator(mode="after")
    def _has_a_bound(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("a range rule needs min, max or both")
        return self


class AllowedRule(Rule):
    rule: Literal["allowed"]
    column: str
    values: list[str | int | float | bool] | None = None
    source: str | None = Field(default=None, description="or: the values of a source's column")
    source_column: str | None = Field(default=None, description="default: the same name")

    @model_validator(mode="after")
    def _one_kind_of_values(self) -> AllowedRule:
        if (self.values is None) == (self.source is None):
            raise ValueError("an allowed rule needs either values or source")
        return self


class UniqueRule(Rule):
    rule: Literal["unique"]
    columns: list[str] = Field(min_length=1)


class RowCountRule(Rule):
    rule: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


ValidationRule = Annotated[
    RequiredRule | TypeRule | NotNullRule | RangeRule | AllowedRule | UniqueRule | RowCountRule,
    Field(discriminator="rule"),
]


class Output(Model):
    partition_by: list[str] = Field(
        default_factory=list,
        description="also write dataset/ partitioned by these columns (hive layout); "
        "table.parquet is always written",
    )


class DaskSettings(Model):
    workers: int | None = Field(default=None, gt=0, description="local cluster; default: CPUs")
    partition_mb: int = Field(default=64, gt=0, description="input bytes per partition")


class EtlSpec(Model):
    sources: dict[str, Source] = Field(min_length=1)
    main: str | None = Field(default=None, description="the fact table; default: the first source")
    steps: list[Step] = Field(default_factory=list, description="applied in order")
    # Shorthand for steps in a fixed order: joins, parse_dates, derive, filter, drop.
    joins: list[Join] = Field(default_factory=list)
    parse_dates: list[str] = Field(default_factory=list, description="as UTC timestamps")
    derive: dict[str, str] = Field(default_factory=dict, description="new column -> expression")
    filter: list[str] = Field(default_factory=list, description="rows must satisfy all")
    drop: list[str] = Field(default_factory=list)
    validation: list[ValidationRule] = Field(
        default_factory=list, description="checked on the output; an error rule that fails stops"
    )
    output: Output = Field(default_factory=Output)
    engine: Literal["auto", "pandas", "dask"] = Field(
        default="auto",
        description="auto: the Dask cluster at DASK_SCHEDULER_ADDRESS when set, else pandas "
        "when the inputs fit comfortably in memory",
    )
    dask: DaskSettings = Field(default_factory=DaskSettings)
    sample_rows: int | None = Field(default=None, gt=0, description="keep a random sample")
    seed: int = 0

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_are_a_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _names_exist(self) -> EtlSpec:
        sources = sorted(self.sources)
        if self.main is not None and self.main not in self.sources:
            raise ValueError(f"main {self.main!r} is not one of the sources {sources}")
        named = [j.source for j in self.joins] + [
            s.join.source for s in self.steps if s.join is not None
        ]
        named += [r.source for r in self.validation if isinstance(r, AllowedRule) and r.source]
        for name in named:
            if name not in self.sources:
                raise ValueError(f"source {name!r} is not one of the sources {sources}")
        shorthand = [
            k for k in ("joins", "parse_dates", "derive", "filter", "drop") if getattr(self, k)
        ]
        if self.steps and shorthand:
            raise ValueError(f"use steps or the shorthand keys ({', '.join(shorthand)}), not both")
        return self

    @property
    def main_source(self) -> str:
        return self.main or next(iter(self.sources))

    def transform_steps(self) -> list[Step]:
        """The steps in order: `steps`, or the shorthand keys expanded."""
        if self.steps:
            return list(self.steps)
        steps = [Step(join=join) for join in self.joins]
        if self.parse_dates:
            dates = {c: ColumnType(type="timestamp", timezone="UTC") for c in self.parse_dates}
            steps.append(Step(cast=Cast(columns=dates)))
        if self.derive:
            steps.append(Step(derive=self.derive))
        steps += [Step(filter=expression) for expression in self.filter]
        if self.drop:
            steps.append(Step(drop=self.drop))
        return steps
