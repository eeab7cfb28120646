"""The pipeline spec: pydantic models per section, YAML in, errors that name the key and its
line out."""

from mlbatch.spec.base import STAGES, Model, Task
from mlbatch.spec.etl import EtlSpec, Join, Source
from mlbatch.spec.evaluate import EvaluateSpec
from mlbatch.spec.execution import ExecutionSpec, StageExecution
from mlbatch.spec.explore import ExploreSpec
from mlbatch.spec.features import FeaturesSpec, SplitSpec
from mlbatch.spec.loader import apply_overrides, load_spec, parse_yaml, validate_spec
from mlbatch.spec.pipeline import PipelineSpec
from mlbatch.spec.train import TrainSpec

__all__ = [
    "STAGES", "EtlSpec", "EvaluateSpec", "ExecutionSpec", "ExploreSpec", "FeaturesSpec", "Join",
    "Model", "PipelineSpec", "Source", "SplitSpec", "StageExecution", "Task", "TrainSpec",
    "apply_overrides", "load_spec", "parse_yaml", "validate_spec",
]  # fmt: skip
