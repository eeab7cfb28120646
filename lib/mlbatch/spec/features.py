"""The `features:` section: the split and the model-independent preparation."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlbatch.spec.base import Model


class SplitSpec(Model):
    train: float = Field(default=0.7, gt=0, lt=1)
    valid: float = Field(default=0.2, gt=0, lt=1)
    test: float = Field(default=0.1, gt=0, lt=1)
    seed: int = 42
    stratify: bool = Field(default=True, description="classification only")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.valid + self.test - 1) > 1e-6:
            raise ValueError("train + valid + test must add up to 1")
        return self


class FeaturesSpec(Model):
    split: SplitSpec = Field(default_factory=SplitSpec)
    drop: list[str] = Field(default_factory=list, description="columns never used as features")
    max_categories: int = Field(
        default=200, gt=1, description="rarer categories of a column share one 'other' code"
    )
