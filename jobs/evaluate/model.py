"""The train stage's model, loaded from its native format, and its predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import xgboost

from mlbatch.errors import BadInput

FAMILIES = ("xgboost", "lightgbm")


@dataclass(frozen=True)
class TrainedModel:
    info: dict  # model_info.json: family, task, classes, features in column order, params
    booster: Any

    @property
    def family(self) -> str:
        return self.info["family"]


def read_model_info(path: Path) -> dict:
    info = json.loads(path.read_text())
    if info.get("family") not in FAMILIES:
        raise BadInput(f"model_info.json names an unknown model family {info.get('family')!r}")
    return info


def load_model(info: dict, model_path: Path) -> TrainedModel:
    """Load the booster with its own library (the file holds only the rounds up to the best)."""
    if info["family"] == "xgboost":
        return TrainedModel(info, xgboost.Booster(model_file=str(model_path)))
    return TrainedModel(info, lightgbm.Booster(model_file=str(model_path)))


def predict(model: TrainedModel, x: np.ndarray) -> np.ndarray:
    """Probabilities of class 1 (binary), of each class (multiclass), or values (regression)."""
    if model.family == "xgboost":
        return model.booster.predict(xgboost.DMatrix(x, feature_names=model.booster.feature_names))
    return model.booster.predict(x)
