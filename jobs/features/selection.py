"""Which columns may become features, and why the others may not."""

from __future__ import annotations

import pandas as pd

IDENTIFIER_UNIQUE_SHARE = (
    0.9  # a text column this unique identifies rows, it does not describe them
)


def exclusions(
    table: pd.DataFrame, schema: dict, *, target: str, drop: list[str]
) -> dict[str, str]:
    """Columns that must not be features, each with the reason (recorded in the schema)."""
    excluded = {target: "target"}
    after = set(schema.get("known_after_prediction", []))
    for column in after:
        excluded[column] = "known only after prediction time"
    for column in schema.get("id_columns", []):
        excluded[column] = "identifier"
    for column in drop:
        excluded[column] = "dropped in the spec (features.drop)"
    # A column derived from a post-prediction column leaks it too (the target excepted).
    for column, lineage in schema.get("lineage", {}).items():
        leaked = after.intersection(lineage.get("derived_from", []))
        if column != target and leaked:
            excluded[column] = f"derived from {sorted(leaked)}, known only after prediction time"
    for column in table.columns:
        if column in excluded:
            continue
        values = table[column]
        if values.isna().all():
            excluded[column] = "always missing"
        elif values.nunique(dropna=True) <= 1:
            excluded[column] = "constant"
        elif kind_of(values) == "categorical" and (
            values.nunique() > IDENTIFIER_UNIQUE_SHARE * values.notna().sum()
        ):
            excluded[column] = "nearly every value unique (an identifier)"
    return excluded


def kind_of(values: pd.Series) -> str:
    """numeric, categorical or date: how the transformer treats a column."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "numeric"
    return "categorical"
