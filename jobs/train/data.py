"""The features stage's prepared splits (and folds), as arrays the model families train on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.stage import StageContext

TRAIN_CURVE_ROWS = 10_000  # the training curve is scored on a sample: cheap every round


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
    # None, or "log1p" when the targets above are log1p of the real ones (regression):
    # scores and saved predictions are on the original scale (target_transform.py).
    target_transform: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def train_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """At most TRAIN_CURVE_ROWS training rows, the same ones every time."""
        if len(self.y_train) <= TRAIN_CURVE_ROWS:
            return self.x_train, self.y_train
        rows = np.random.default_rng(0).choice(len(self.y_train), TRAIN_CURVE_ROWS, replace=False)
        rows.sort()
        return self.x_train[rows], self.y_train[rows]

    def merged(self) -> TrainingData:
        """Train and valid as one training set (for a final refit); valid kept as is."""
        return TrainingData(
            task=self.task, features=self.features, categorical=self.categorical,
            classes=self.classes, x_train=np.vstack([self.x_train, self.x_valid]),
            y_train=np.concatenate([self.y_train, self.y_valid]),
            x_valid=self.x_valid, y_valid=self.y_valid, target_transform=self.target_transform,
        )  # fmt: skip


@dataclass(frozen=True)
class SearchData:
    """What every trial gets: the train/valid split and the other CV folds, if any."""

    main: TrainingData
    folds: list[TrainingData] = field(default_factory=list)  # without the main split

    @property
    def cv(self) -> bool:
        return bool(self.folds)


def load_search_data(ctx: StageContext, *, use_folds: bool) -> tuple[SearchData, dict]:
    """The train and valid splits (and features' other folds), and the feature schema."""
    schema = json.loads(ctx.fetch("features", "feature_schema.json").read_text())
    main = training_data(schema, read_split(ctx, "splits/train"), read_split(ctx, "splits/valid"))
    folds = []
    if use_folds and schema.get("folds"):
        listing = json.loads(ctx.fetch("features", schema["folds"]).read_text())
        # features' last fold is the train/valid split itself (docs/stage-contract.md)
        for entry in listing["folds"][:-1]:
            fold_schema = {**schema, "features": _fold_features(schema, entry)}
            train = read_split(ctx, entry["train"].removesuffix(".parquet"))
            valid = read_split(ctx, entry["valid"].removesuffix(".parquet"))
            folds.append(training_data(fold_schema, train, valid))
    return SearchData(main, folds), schema


@dataclass(frozen=True)
class StoredSplits:
    """Where the features stage stored the train and valid splits, and how to read them:
    what data-parallel workers get instead of arrays (they read their shards themselves)."""

    train_uri: str
    valid_uri: str
    task: str
    features: list[str]
    categorical: list[int]
    classes: list | None
    target_column: str
    target_transform: str | None = None  # applied to the targets as each worker reads them

    @property
    def columns(self) -> list[str]:
        return [*self.features, self.target_column]


def stored_splits(ctx: StageContext, schema: dict, data: TrainingData) -> StoredSplits:
    """The splits data was read from, by their storage URIs (local paths or s3://)."""
    return StoredSplits(
        train_uri=ctx.upstream_uri("features", "splits/train.parquet"),
        valid_uri=ctx.upstream_uri("features", "splits/valid.parquet"),
        task=data.task, features=data.features, categorical=data.categorical,
        classes=data.classes, target_column=schema.get("target_column", "__target"),
        target_transform=data.target_transform,
    )  # fmt: skip


def load_test_split(ctx: StageContext, data: TrainingData, schema: dict) -> tuple[np.ndarray, ...]:
    """The held-out test rows in the model's column order (for the leaderboard only)."""
    target = schema.get("target_column", "__target")
    return split_arrays(read_split(ctx, "splits/test"), data.features, target, "test")


def read_split(ctx: StageContext, path: str) -> pd.DataFrame:
    return pd.read_parquet(ctx.fetch("features", f"{path}.parquet"))


def _fold_features(schema: dict, entry: dict) -> list[dict]:
    """A fold's features (its own transformer may keep others), with the schema's kinds."""
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    names = entry.get("features") or list(kinds)
    return [{"name": name, "kind": kinds.get(name, "numeric")} for name in names]


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
