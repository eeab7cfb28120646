"""Fit the transformer on training rows only and prepare every split with it.

The training split's own prepared rows come from `fit_transform`, so its target-encoded
columns are cross-fitted (each row encoded by the other folds); valid, test and any rows
seen later are only transformed.
"""

from __future__ import annotations

from dataclasses import dataclass

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
class Prepared:
    transformer: Pipeline
    frames: dict[str, pd.DataFrame]  # split name -> __row_id, features..., __target
    features: list[dict]  # name, kind, source, sources, treatment (feature_schema.json)
    before_reduction: int  # features the column step made, before any selection or PCA


def fit_prepare(
    plan: TransformerPlan, table: pd.DataFrame, labels: np.ndarray, rows: dict[str, np.ndarray]
) -> Prepared:
    """Fit on rows["train"]; transform every other split with the fitted transformer."""
    transformer = preprocessing.build_transformer(plan)
    train = rows["train"]
    outputs = {"train": transformer.fit_transform(table.iloc[train], labels[train])}
    for name, positions in rows.items():
        if name != "train":
            outputs[name] = transformer.transform(table.iloc[positions])
    features, before = describe_features(transformer, plan)
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    frames = {}
    for name, prepared in outputs.items():
        frame = preprocessing.as_feature_dtypes(prepared, categorical).reset_index(drop=True)
        frame.insert(0, ROW_ID, rows[name].astype("int64"))
        frame[TARGET] = labels[rows[name]]
        frames[name] = frame
    return Prepared(transformer, frames, features, before)


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
