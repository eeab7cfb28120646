"""The `features:` section: the split and the model-independent preparation.

Column names here (split columns, overrides, crosses) are checked against etl's table by
the features stage, which is the first to see it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlbatch.spec.base import Model

# features.split.folds: auto (opt-in): 5-fold CV for a small random split. Not the
# default: at a 60 s budget on 2 CPUs, one 70/20 split scored better than 5-fold CV on
# most of 11 small benchmark tables (docs/train.md), CV leaving a fifth of the trials; and
# scoring only the finalists on the folds (train.cv: finalists) was level with one split
# at 60 s and 300 s (docs/train.md, 2026-12-05).
AUTO_FOLDS = 5
AUTO_FOLDS_MAX_ROWS = 10_000

Imputation = Literal["mean", "median", "most_frequent", "constant", "iterative"]


class SplitSpec(Model):
    strategy: Literal["random", "time", "group"] = Field(
        default="random",
        description="random rows; time: train on the past, test on the future (time_column); "
        "group: no value of group_column in two splits",
    )
    train: float = Field(default=0.7, gt=0, lt=1)
    valid: float = Field(default=0.2, gt=0, lt=1)
    test: float = Field(default=0.1, gt=0, lt=1)
    seed: int = 42
    stratify: bool = Field(
        default=True,
        description="random splits keep class shares (classification) or target quantiles "
        "(regression) alike in every split",
    )
    time_column: str | None = Field(default=None, description="strategy time: the clock")
    group_column: str | None = Field(default=None, description="strategy group: the groups")
    folds: Literal["auto"] | int | None = Field(
        default=None,
        description="k-fold CV on the rows outside test (written to folds/); the last fold "
        "is also splits/valid, and train/valid fractions are then not used. auto: "
        f"{AUTO_FOLDS} folds for a random split with the default fractions and at most "
        f"{AUTO_FOLDS_MAX_ROWS:,} rows outside test (one validation split that small is too "
        "noisy to choose a model on), none otherwise",
    )  # fmt: skip

    @model_validator(mode="after")
    def _consistent(self) -> SplitSpec:
        if isinstance(self.folds, int) and not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be 2 to 20, auto or null, not {self.folds}")
        if abs(self.train + self.valid + self.test - 1) > 1e-6:
            raise ValueError("train + valid + test must add up to 1")
        if self.strategy == "time" and not self.time_column:
            raise ValueError("strategy time needs time_column")
        if self.strategy == "group" and not self.group_column:
            raise ValueError("strategy group needs group_column")
        return self


class ColumnTreatment(Model):
    """Overrides for one column; anything left out is chosen from the data."""

    kind: Literal["numeric", "categorical", "date"] | None = None
    impute: Imputation | None = Field(default=None, description="numeric columns")
    fill_value: float = Field(default=0.0, description="for impute: constant")
    indicator: bool | None = Field(default=None, description="add a was-missing column")
    encoding: Literal["codes", "target", "hashing"] | None = Field(
        default=None, description="categorical columns"
    )


class ReduceSpec(Model):
    method: Literal["none", "variance", "mutual_info", "model", "pca"] = "none"
    keep: int | None = Field(
        default=None, gt=0,
        description="mutual_info/model: features kept; pca: components (default: 95% variance)",
    )  # fmt: skip
    min_variance: float = Field(default=0.0, ge=0, description="variance: keep features above")

    @model_validator(mode="after")
    def _keep_needed(self) -> ReduceSpec:
        if self.method in ("mutual_info", "model") and self.keep is None:
            raise ValueError(f"method {self.method} needs keep (how many features)")
        return self


class FeaturesSpec(Model):
    split: SplitSpec = Field(default_factory=SplitSpec)
    drop: list[str] = Field(default_factory=list, description="columns never used as features")
    keep: list[str] = Field(
        default_factory=list, description="columns kept although explore advises dropping them"
    )
    apply_advice: bool = Field(default=True, description="drop what explore's advice drops")
    columns: dict[str, ColumnTreatment] = Field(
        default_factory=dict, description="per-column overrides of the chosen treatment"
    )
    crosses: list[list[str]] = Field(
        default_factory=list, description="each a list of >= 2 columns combined into a category"
    )
    max_categories: int = Field(
        default=200, gt=1,
        description="a categorical with more distinct training values is target-encoded "
        "instead of coded",
    )  # fmt: skip
    hash_above: int = Field(
        default=10_000, gt=1, description="a categorical with more distinct values is hashed"
    )
    hash_buckets: int = Field(default=1024, gt=1)
    rare_min_count: int = Field(
        default=10, ge=1, description="rarer training categories share one 'rare' code"
    )
    missing_indicator_share: float = Field(
        default=0.01, gt=0, le=1,
        description="a numeric column missing in at least this share of training rows gets "
        "a was-missing column",
    )  # fmt: skip
    cyclical_dates: bool = Field(default=True, description="sin/cos of month, weekday, hour")
    reduce: ReduceSpec = Field(default_factory=ReduceSpec)

    @model_validator(mode="after")
    def _crosses_pair_up(self) -> FeaturesSpec:
        for cross in self.crosses:
            if len(set(cross)) < 2:
                raise ValueError(f"a cross combines two or more distinct columns, not {cross}")
        if self.hash_above <= self.max_categories:
            raise ValueError("hash_above must be larger than max_categories")
        return self
