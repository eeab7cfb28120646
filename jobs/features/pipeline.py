"""The features stage: split, then fit the transformer on the training rows only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlbatch import preprocessing
from mlbatch.errors import BadInput
from mlbatch.stage import StageContext
from mlbatch_jobs.features.selection import exclusions, kind_of
from mlbatch_jobs.features.split import split_rows

ROW_ID = "__row_id"
TARGET = "__target"


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    schema = json.loads(ctx.fetch("etl", "schema.json").read_text())
    table = pq.read_table(ctx.fetch("etl", "table.parquet")).to_pandas()
    task = schema["task"]

    excluded = exclusions(table, schema, target=spec.target, drop=spec.features.drop)
    kinds = {c: kind_of(table[c]) for c in table.columns if c not in excluded}
    if not kinds:
        raise BadInput("no column is left to use as a feature: " + json.dumps(excluded))
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    dates = [c for c, k in kinds.items() if k == "date"]
    for column, reason in excluded.items():
        print(f"not a feature: {column} ({reason})")

    labels, classes = encode_target(table[spec.target], task)
    classification = task != "regression"
    splits = split_rows(
        labels, spec.features.split, stratify=classification and spec.features.split.stratify
    )

    raw = table[numeric + categorical + dates].astype({c: "float64" for c in numeric})
    raw = preprocessing.categorical_as_strings(raw, categorical)
    transformer = preprocessing.build_transformer(
        numeric=numeric, categorical=categorical, dates=dates,
        max_categories=spec.features.max_categories,
    )  # fmt: skip
    transformer.fit(raw.iloc[splits["train"]])  # fitted on training rows only: no leakage
    preprocessing.save_transformer(transformer, ctx.out_dir / "transformer.skops")

    (ctx.out_dir / "splits").mkdir()
    (ctx.out_dir / "raw").mkdir()
    for name, rows in splits.items():
        prepared = preprocessing.transform(transformer, raw.iloc[rows], categorical)
        prepared.insert(0, ROW_ID, rows.astype("int64"))
        prepared[TARGET] = labels[rows]
        prepared.reset_index(drop=True).to_parquet(ctx.out_dir / "splits" / f"{name}.parquet")
        original = table.iloc[rows].copy()
        original.insert(0, ROW_ID, rows.astype("int64"))
        original.reset_index(drop=True).to_parquet(ctx.out_dir / "raw" / f"{name}.parquet")
        ctx.metrics[f"{name}_rows"] = len(rows)
        if classification:
            ctx.metrics[f"{name}_class_shares"] = class_shares(labels[rows], len(classes))

    features = [
        {"name": name, "kind": "categorical" if name in categorical else "numeric",
         "source": _source_of(name, dates)}
        for name in transformer[-1].get_feature_names_out()
    ]  # fmt: skip
    feature_schema = {
        "task": task, "target": spec.target, "target_column": TARGET, "row_id": ROW_ID,
        "classes": classes, "features": features, "excluded": excluded,
        "inputs": {"numeric": numeric, "categorical": categorical, "dates": dates},
    }  # fmt: skip
    (ctx.out_dir / "feature_schema.json").write_text(json.dumps(feature_schema, indent=2))
    ctx.metrics.update(features=len(features), excluded=len(excluded))
    print(f"{len(features)} features; splits {[len(r) for r in splits.values()]}")


def encode_target(target: pd.Series, task: str) -> tuple[np.ndarray, list | None]:
    """0/1 or 0..K-1 codes (classes in sorted order) for classification; floats otherwise."""
    if task == "regression":
        return target.to_numpy(dtype="float64"), None
    classes = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
    codes = {label: code for code, label in enumerate(classes)}
    labels = target.map(codes).to_numpy(dtype="int64")
    return labels, [_plain(c) for c in classes]


def class_shares(labels: np.ndarray, n_classes: int) -> list[float]:
    counts = np.bincount(labels, minlength=n_classes)
    return [round(float(c) / max(len(labels), 1), 4) for c in counts]


def _source_of(feature: str, dates: list[str]) -> str:
    for column in dates:
        if feature.startswith(f"{column}_"):
            return column
    return feature


def _plain(value):
    """JSON-friendly class label (numpy scalars become Python ones)."""
    return value.item() if hasattr(value, "item") else value
