"""The whole pipeline spec."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from mlbatch.spec.base import Model, Task
from mlbatch.spec.etl import EtlSpec
from mlbatch.spec.evaluate import EvaluateSpec, check_task_metrics
from mlbatch.spec.execution import ExecutionSpec
from mlbatch.spec.explore import ExploreSpec
from mlbatch.spec.features import FeaturesSpec
from mlbatch.spec.predict import PredictSpec
from mlbatch.spec.tracking import TrackingSpec
from mlbatch.spec.train import TrainSpec


class PipelineSpec(Model):
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
    description: str = ""
    target: str = Field(min_length=1)
    task: Task = "auto"
    known_after_prediction: list[str] = Field(
        default_factory=list,
        description="columns known only after the moment of prediction: never features",
    )
    id_columns: list[str] = Field(default_factory=list, description="identifiers: never features")
    etl: EtlSpec
    explore: ExploreSpec = Field(default_factory=ExploreSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    predict: PredictSpec | None = Field(
        default=None, description="makes this a batch-scoring pipeline: etl -> predict"
    )

    @field_validator("known_after_prediction", "id_columns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> PipelineSpec:
        """A declared task lets a gate on a metric it lacks fail here, before anything runs;
        with `task: auto` evaluate checks once etl has resolved the task."""
        if self.task != "auto":
            check_task_metrics(self.evaluate, self.task)
        return self
