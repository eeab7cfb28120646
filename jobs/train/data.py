"""The features stage's prepared splits, as arrays the model families train on."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.stage import StageContext


@dataclass(frozen=True)
class TrainingData:
    """Train and validation features and targets, plus what the schema says about them."""

    task: str  # binary | multiclass | regression
    features: list[str]  # in model column order
    categorical: list[int]  # column positions of categorical codes
    classes: list | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0


def load_training_data(ctx: StageContext) -> tuple[TrainingData, dict]:
    """The train and valid splits and the feature schema, read through features' manifest."""
    schema = json.loads(ctx.fetch("features", "feature_schema.json").read_text())
    splits = {
        name: pd.read_parquet(ctx.fetch("features", f"splits/{name}.parquet"))
        for name in ("train", "valid")
    }
    return training_data(schema, splits["train"], splits["valid"]), schema


def training_data(schema: dict, train: pd.DataFrame, valid: pd.DataFrame) -> TrainingData:
    """Arrays in the schema's feature order; BadInput if a split lacks a column."""
    features = [feature["name"] for feature in schema["features"]]
    if not features:
        raise BadInput("the feature schema lists no features")
    task = schema["task"]
    if task not in ("binary", "multiclass", "regression"):
        raise BadInput(f"the feature schema has an unknown task {task!r}")
    target = schema.get("target_column", "__target")
    x_train, y_train = split_arrays(train, features, target, "train")
    x_valid, y_valid = split_arrays(valid, features, target, "valid")
    if task != "regression" and len(np.unique(y_valid)) < 2:
        raise BadInput("the valid split holds a single class: no model can be ranked on it")
    return TrainingData(
        task=task,
        features=features,
        categorical=[i for i, f in enumerate(schema["features"]) if f["kind"] == "categorical"],
        classes=schema.get("classes"),
        x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid,
    )  # fmt: skip


def split_arrays(
    frame: pd.DataFrame, features: list[str], target: str, split: str
) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise BadInput(f"the {split} split lacks columns {missing[:5]}")
    if frame.empty:
        raise BadInput(f"the {split} split has no rows")
    return frame[features].to_numpy(dtype="float64"), frame[target].to_numpy()
