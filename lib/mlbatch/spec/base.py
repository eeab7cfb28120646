"""What every part of the spec shares."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

STAGES = ("etl", "explore", "features", "train", "evaluate")  # a training pipeline
SCORING_STAGES = ("etl", "predict")  # a batch-scoring pipeline (a spec with `predict:`)
ALL_STAGES = (*STAGES, "predict")
Task = Literal["auto", "binary", "multiclass", "regression"]


class Model(BaseModel):
    """A spec section: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")
