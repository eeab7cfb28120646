"""The `train:` section: model families, the hyperparameter search, and where trials run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlbatch.spec.base import Model

Family = Literal["linear", "random_forest", "xgboost", "lightgbm"]
GPU_FAMILIES = ("xgboost", "lightgbm")  # LightGBM only where its build supports a GPU
# The metrics a search can tune, and which end of each is better.
TUNING_METRICS: dict[str, str] = {
    "roc_auc": "max", "log_loss": "min", "accuracy": "max",
    "rmse": "min", "mae": "min", "r2": "max",
}  # fmt: skip
TaskMetric = Literal["roc_auc", "log_loss", "accuracy", "rmse", "mae", "r2"]


class Distribution(Model):
    """One hyperparameter's range: `{type: loguniform, low: 0.01, high: 0.3}`."""

    type: Literal["uniform", "loguniform", "int", "logint", "choice"]
    low: float | None = Field(default=None, description="uniform, loguniform, int, logint")
    high: float | None = Field(default=None, description="inclusive for int and logint")
    values: list[float | int | str | bool] | None = Field(default=None, description="choice")

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs values")
            return self
        if self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"{self.type} needs low < high")
        if self.type.startswith("log") and self.low <= 0:
            raise ValueError(f"{self.type} needs low > 0")
        return self


class TrainResources(Model):
    gpu: Literal["auto", "never", "required"] = Field(
        default="auto",
        description="auto: GPU-capable families use GPUs when Ray sees some; required: "
        "fail before any trial when it sees none",
    )
    cpus_per_trial: int | None = Field(
        default=None, gt=0, description="default: 1 on CPUs (trials side by side), or the "
        "CPUs of a GPU's share on GPUs",
    )  # fmt: skip
    gpus_per_trial: float | None = Field(default=None, gt=0, le=8, description="default: 1")


class TrainSpec(Model):
    models: list[Family] = Field(
        default_factory=lambda: ["linear", "xgboost", "lightgbm"], min_length=1,
        description="searched in this order; the linear baseline shows what boosting adds",
    )  # fmt: skip
    num_samples: int | None = Field(
        default=None, gt=0, description="trials per model family at most; default: no cap, "
        "the time budget ends the search (the linear baseline is capped on its own)",
    )  # fmt: skip
    time_budget_s: int = Field(
        default=300, gt=0, description="for the whole search, the refit included"
    )
    max_concurrent_trials: int | None = Field(
        default=None, gt=0, description="default: as many as the resources Ray sees allow"
    )
    metric: TaskMetric | None = Field(
        default=None, description="default from the task: roc_auc, log_loss, rmse"
    )
    search: Literal["tpe", "random"] = Field(default="tpe", description="Optuna TPE or random")
    scheduler: Literal["asha", "fifo"] = Field(
        default="asha", description="asha stops weak trials early, from per-round metrics"
    )
    report_every: int = Field(default=10, gt=0, description="rounds between reports to Tune")
    max_rounds: int = Field(default=1000, gt=0, description="boosting rounds or trees at most")
    early_stopping_rounds: int = Field(default=50, gt=0)
    search_spaces: dict[Family, dict[str, Distribution | float | int | str | bool]] = Field(
        default_factory=dict,
        description="per family, ranges (or fixed values) that replace the default ones",
    )
    cv: Literal["trials", "finalists", "off"] = Field(
        default="trials", description="where features wrote CV folds: trials scores every "
        "trial on every fold (five fits a trial); finalists fits each trial once and scores "
        "each family's best trials and its portfolio's defaults on the other folds, choosing "
        "the final model (single or ensemble) there; off uses the train/valid split alone. "
        "true and false mean trials and off",
    )  # fmt: skip
    refit_on_train_valid: bool = Field(
        default=True, description="refit the saved model (every ensemble member) on train + "
        "valid, boosting rounds scaled to the larger data",
    )  # fmt: skip
    ensemble: bool = Field(
        default=True, description="a greedy weighted ensemble of the best trials of every "
        "family, kept only when it beats the best single model on validation",
    )  # fmt: skip
    target_transform: Literal["auto", "none", "log1p"] = Field(
        default="auto", description="regression: auto learns a skewed non-negative target "
        "as log1p when that scores better on validation; predictions are always on the "
        "target's own scale",
    )  # fmt: skip
    resources: TrainResources = Field(default_factory=TrainResources)
    data_parallel: Literal["auto", "always", "never"] = Field(
        default="auto", description="XGBoost and LightGBM trials train data-parallel across "
        "data_parallel_workers Ray Train workers, each reading its shard of the train split "
        "from storage: always, never, or auto (when the train split's feature matrix is over "
        "a quarter of one worker's memory; docs/train.md, Data-parallel training)",
    )  # fmt: skip
    data_parallel_workers: int = Field(
        default=2, ge=2, le=256, description="Ray Train workers per data-parallel trial"
    )
    seed: int = 0

    @field_validator("cv", mode="before")
    @classmethod
    def _cv_as_before(cls, value):
        """Specs written when cv was a switch: true scored every trial on every fold."""
        if isinstance(value, bool):
            return "trials" if value else "off"
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainSpec:
        if len(set(self.models)) != len(self.models):
            raise ValueError("a model family is listed twice")
        unused = sorted(set(self.search_spaces) - set(self.models))
        if unused:
            raise ValueError(f"search_spaces for {unused[0]}, which models does not list")
        if self.resources.gpu == "required" and not set(self.models) & set(GPU_FAMILIES):
            raise ValueError("resources.gpu is required, but no listed model uses a GPU")
        if self.data_parallel == "always" and self.resources.gpu == "required":
            raise ValueError("data_parallel workers train on CPUs: data_parallel: always "
                             "and resources.gpu: required do not go together")  # fmt: skip
        return self
