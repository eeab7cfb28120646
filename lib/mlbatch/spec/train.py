"""The `train:` section: model families and the hyperparameter search."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlbatch.spec.base import Model


class TrainSpec(Model):
    models: list[Literal["xgboost", "lightgbm"]] = Field(
        default_factory=lambda: ["xgboost", "lightgbm"], min_length=1
    )
    num_samples: int = Field(default=8, gt=0, description="trials per model family")
    time_budget_s: int = Field(default=300, gt=0, description="for the whole search")
    max_concurrent_trials: int = Field(default=2, gt=0)
    seed: int = 0
