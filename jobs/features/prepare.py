"""Fit the transformer on training rows only and prepare every split with it.

The training split's own prepared rows come from `fit_transform`, so its target-encoded
columns are cross-fitted (each row encoded by the other folds); valid, test and any rows
seen later are only transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlbatch import preprocessing
from mlbatch.preprocessing import TransformerPlan

ROW_ID = "__row_id"
TARGET = "__target"
TREATMENT_OF_BRANCH = {
    "missing": "was-missing", "codes": "integer codes", "target": "target encoding",
    "hashing": "hashing",
}  # fmt: skip


@dataclass
class Fitted:
    """A transformer fitted on training rows, and what it makes of them."""

    transformer: Pipeline
    features: list[dict]  # name, kind, source, sources, treatment (feature_schema.json)
    before_reduction: int  # features the column step made, before any selection or PCA
    inputs: list[str]  # the raw columns it reads

    @property
    def categorical(self) -> list[str]:
        return [f["name"] for f in self.features if f["kind"] == "categorical"]


@dataclass
class Prepared(Fitted):
    # split name -> __row_id, features..., __target
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)


def fit_prepare(
    plan: TransformerPlan, table: pd.DataFrame, labels: np.ndarray, rows: dict[str, np.ndarray]
) -> Prepared:
    """Fit on rows["train"]; transform every other split with the fitted transformer. (The
    stage itself uses fit and transform, holding one split's prepared rows at a time.)"""
    train = rows["train"]
    fitted, frame = fit(plan, rows_of(table, input_columns(plan), train), labels, train)
    frames = {"train": frame}
    for name, positions in rows.items():
        if name != "train":
            frames[name] = transform(fitted, table, labels, positions)
    return Prepared(**vars(fitted), frames=frames)


def fit(
    plan: TransformerPlan, inputs: pd.DataFrame, labels: np.ndarray, train: np.ndarray
) -> tuple[Fitted, pd.DataFrame]:
    """The transformer fitted on the training rows (`inputs`: their input_columns, at
    positions `train`), and those rows prepared by fit_transform (cross-fitted)."""
    transformer = preprocessing.build_transformer(plan)
    prepared = transformer.fit_transform(inputs, labels[train])
    fitted = Fitted(transformer, *describe_features(transformer, plan), list(inputs.columns))
    return fitted, _frame(prepared, fitted, labels, train)


def transform(
    fitted: Fitted, table: pd.DataFrame, labels: np.ndarray, positions: np.ndarray
) -> pd.DataFrame:
    """Rows the transformer never saw in fitting, prepared by it."""
    prepared = fitted.transformer.transform(rows_of(table, fitted.inputs, positions))
    return _frame(prepared, fitted, labels, positions)


def input_columns(plan: TransformerPlan) -> list[str]:
    """The raw columns a transformer of this plan reads (crosses are of these)."""
    return [*plan.numeric, *plan.categorical, *plan.dates]


def rows_of(table: pd.DataFrame, columns: list[str], positions: np.ndarray) -> pd.DataFrame:
    """The rows at these positions, of these columns only: a copy of those columns, never
    of the whole table."""
    return table[columns].iloc[positions]


def _frame(
    prepared: pd.DataFrame, fitted: Fitted, labels: np.ndarray, positions: np.ndarray
) -> pd.DataFrame:
    """__row_id, the features (codes int32, the rest float64), __target."""
    frame = preprocessing.as_feature_dtypes(prepared, fitted.categorical).reset_index(drop=True)
    frame.insert(0, ROW_ID, positions.astype("int64"))
    frame[TARGET] = labels[positions]
    return frame


def describe_features(transformer: Pipeline, plan: TransformerPlan) -> tuple[list[dict], int]:
    """Every output column with its kind, the input columns it comes from and how; and the
    count before any reduction."""
    columns = transformer.named_steps["columns"]
    described = {}
    for branch, fitted, inputs in columns.transformers_:
        if branch == "remainder" or not len(inputs):
            continue
        names = list(fitted.get_feature_names_out(inputs))
        per_input = len(names) // len(inputs)  # every branch works column by column
        treatment = TREATMENT_OF_BRANCH.get(branch, branch.replace("_", " "))
        for i, column in enumerate(inputs):
            sources = _sources(column, plan)
            chosen = sources[0] if sources[0] in plan.dates else column  # the treated column
            kind = "categorical" if plan.encoding.get(column) in ("codes", "hashing") else (
                "numeric"
            )  # fmt: skip
            for name in names[i * per_input : (i + 1) * per_input]:
                described[name] = {
                    "name": name, "kind": "numeric" if branch == "missing" else kind,
                    "source": ",".join(sources), "sources": sources, "input": chosen,
                    "treatment": treatment,
                }  # fmt: skip
    if "reduce" not in transformer.named_steps:
        return list(described.values()), len(described)
    reduce = transformer.named_steps["reduce"]
    if reduce.method != "pca":
        return [described[name] for name in reduce.kept_], len(described)
    numeric = sorted({s for name in reduce.numeric_ for s in described[name]["sources"]})
    return [
        described.get(name) or {
            "name": name, "kind": "numeric", "source": ",".join(numeric), "sources": numeric,
            "input": "pca", "treatment": "principal component",
        }
        for name in reduce.kept_
    ], len(described)  # fmt: skip


def _sources(column: str, plan: TransformerPlan) -> list[str]:
    """The raw columns behind a transformer input: a cross's columns, a date part's date."""
    for cross in plan.crosses:
        if column == preprocessing.cross_name(cross):
            return list(cross)
    for date, parts in plan.dates.items():
        if column in preprocessing.date_feature_names(date, parts, cyclical=plan.cyclical):
            return [date]
    return [column]
