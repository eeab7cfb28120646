"""Which columns may become features, of what kind, and why the others may not.

The spec is the authority (target, known_after_prediction, id_columns, features.drop);
explore's advice adds its drops unless features.keep names a column or
features.apply_advice is false. Every column name the features section uses is checked
against etl's table first, so a typo is a clear error rather than a silent no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.input_values import is_dates
from mlbatch.spec import PipelineSpec


def check_names(spec: PipelineSpec, columns: Iterable[str]) -> None:
    """BadInput naming the first column the features section names that is not in the table."""
    present = set(columns)
    features = spec.features
    named = [
        ("features.split.time_column", [features.split.time_column]),
        ("features.split.group_column", [features.split.group_column]),
        ("features.drop", features.drop),
        ("features.keep", features.keep),
        ("features.columns", list(features.columns)),
        *((f"features.crosses[{i}]", cross) for i, cross in enumerate(features.crosses)),
    ]
    for where, names in named:
        for name in names:
            if name is not None and name not in present:
                raise BadInput(f"{where}: column {name!r} is not in etl's table")


def exclusions(
    table: pd.DataFrame, schema: Mapping[str, Any], spec: PipelineSpec, advice: Mapping[str, Any]
) -> dict[str, str]:
    """Columns that must not be features, each with its reason (recorded in the schema)."""
    target, features = spec.target, spec.features
    excluded = {target: "target"}
    after = set(spec.known_after_prediction) - {target}
    for column in spec.known_after_prediction:  # the spec's order: the same output every run
        if column != target:
            excluded[column] = "known only after prediction time (spec)"
    for column in spec.id_columns:
        excluded[column] = "identifier (spec id_columns)"
    # A column derived from a post-prediction column leaks it too (the target excepted).
    for column, lineage in (schema.get("lineage") or {}).items():
        leaked = after.intersection(lineage.get("derived_from", []))
        if column != target and leaked:
            excluded[column] = f"derived from {sorted(leaked)}, known only after prediction time"
    declared = set(excluded)
    for column in features.keep:
        if column in declared:
            raise BadInput(
                f"features.keep: {column!r} cannot be kept: {excluded[column]}; change the spec "
                "there instead"
            )
    if features.apply_advice:
        for column in advice.get("drop", []):
            if column in features.keep or column not in table:
                continue
            found = "explore advice: " + _reasons(advice["columns"][column])
            excluded[column] = f"{excluded[column]}; {found}" if column in excluded else found
    for column in features.drop:
        excluded[column] = "dropped in the spec (features.drop)"
    if features.split.strategy == "group":
        excluded[features.split.group_column] = "the split's group column (no group repeats)"
    # Whatever the advice, a column with no information cannot be encoded into any.
    for column in table.columns:
        if column not in excluded and table[column].nunique(dropna=True) <= 1:
            excluded[column] = "always missing" if table[column].isna().all() else "constant"
    return excluded


def kinds(
    table: pd.DataFrame, columns: Iterable[str], spec: PipelineSpec, advice: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """numeric, categorical or date per column: the spec's override, else explore's advice
    (integer codes are categories), else the dtype; and why, where it is not the dtype."""
    found, why = {}, {}
    advised = advice.get("columns", {})
    for column in columns:
        override = spec.features.columns.get(column)
        if override is not None and override.kind is not None:
            found[column], why[column] = override.kind, "kind set in the spec"
        elif advised.get(column, {}).get("treat_as") == "categorical":
            found[column] = "categorical"
            why[column] = "a categorical: explore found these integers to be a code"
        else:
            found[column] = kind_of(table[column])
    return found, why


def kind_of(values: pd.Series) -> str:
    """numeric, categorical or date, by dtype; Arrow dates (datetime.date objects in
    pandas) are dates, never categories."""
    if is_dates(values):
        return "date"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "numeric"
    return "categorical"


def check_crosses(spec: PipelineSpec, excluded: Mapping[str, str]) -> None:
    """A cross of an excluded column would let it back in as a feature."""
    for i, cross in enumerate(spec.features.crosses):
        for column in cross:
            if column in excluded:
                raise BadInput(
                    f"features.crosses[{i}]: column {column!r} is excluded ({excluded[column]})"
                )


def _reasons(entry: Mapping[str, Any]) -> str:
    return "; ".join(f"{r['check']}: {r['message']}" for r in entry.get("reasons", []))
