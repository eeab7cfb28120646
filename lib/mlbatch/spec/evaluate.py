"""The `evaluate:` section: test metrics, quality gates, and registration with a promotion rule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from mlbatch.spec.base import Model

# Every metric evaluate reports, and which end of it is better. Classification metrics
# that need a class are at the chosen threshold (binary) or macro-averaged (multiclass).
METRIC_MODES: dict[str, str] = {
    "roc_auc": "max", "pr_auc": "max", "log_loss": "min", "accuracy": "max",
    "precision": "max", "recall": "max", "f1": "max", "brier": "min",
    "rmse": "min", "mae": "min", "r2": "max", "mape": "min",
}  # fmt: skip
CLASSIFICATION_METRICS = (  # in the order reports show them
    "roc_auc", "log_loss", "accuracy", "pr_auc", "precision", "recall", "f1", "brier",
)  # fmt: skip
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": CLASSIFICATION_METRICS,
    "multiclass": CLASSIFICATION_METRICS,
    "regression": ("rmse", "mae", "r2", "mape"),
}
GATE_PATTERN = re.compile(
    r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?)\s*$"
)
COMPARE = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
}  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """One quality gate, `metric op value`: the test metric must satisfy it."""

    metric: str
    op: str
    value: float

    def passes(self, measured: float | None) -> bool:
        """A metric the test rows cannot define (None) fails its gate."""
        return measured is not None and COMPARE[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_gate(text: str) -> Gate:
    """`roc_auc >= 0.72` as a Gate; ValueError naming what is wrong."""
    match = GATE_PATTERN.match(text.lower())
    if not match:
        raise ValueError(f"gate {text!r} is not `metric op number` (op: >=, >, <=, <)")
    metric, op, value = match.group(1), match.group(2), float(match.group(3))
    if metric not in METRIC_MODES:
        raise ValueError(
            f"gate {text!r}: unknown metric {metric!r}; one of {', '.join(METRIC_MODES)}"
        )
    return Gate(metric, op, value)


def check_task_metrics(spec: EvaluateSpec, task: str) -> None:
    """ValueError if a gate or the promotion metric does not apply to the task."""
    allowed = TASK_METRICS[task]
    for gate in spec.parsed_gates():
        if gate.metric not in allowed:
            raise ValueError(
                f"evaluate.gates: {gate}: {task} models have no {gate.metric} "
                f"({', '.join(allowed)})"
            )
    metric = spec.registry.metric
    if metric is not None and metric not in allowed:
        raise ValueError(f"evaluate.registry.metric {metric!r} does not apply to {task} models")


class RegistrySpec(Model):
    """Where evaluate registers the model, and when it moves the alias to it."""

    enabled: bool = Field(default=True, description="register every model that passes its gates")
    name: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$",
        description="registered model name; default: the spec's name",
    )  # fmt: skip
    alias: str = Field(
        default="production", pattern=r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$",
        description="the alias a promotion moves",
    )  # fmt: skip
    promote: Literal["better", "always", "never"] = Field(
        default="better",
        description="better: when the gates pass and the model beats the alias's current model "
        "on this run's test rows; always: when the gates pass; never",
    )
    metric: str | None = Field(
        default=None, description="the metric compared; default: the task's tuning metric"
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRIC_MODES:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRIC_MODES)}")
        return value


class EvaluateSpec(Model):
    gates: list[str] = Field(
        default_factory=list,
        description='quality gates on test metrics, e.g. ["roc_auc >= 0.72"]: a failed gate '
        "commits the evaluation, ends the run rejected (exit 3) and promotes nothing",
    )
    threshold: Literal["f1"] | float = Field(
        default="f1",
        description="binary: probability at which the positive class is predicted; f1: the "
        "one that maximises F1 on the validation split",
    )
    bootstrap: int = Field(
        default=200, ge=0, le=10_000, description="resamples for confidence intervals (0: none)"
    )
    bootstrap_rows: int = Field(
        default=100_000,
        ge=1_000,
        description="rows drawn per resample; a larger test split is resampled at this size "
        "and the intervals scaled by sqrt(rows drawn / test rows), so the cost stays flat",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    permutation_repeats: int = Field(
        default=3, ge=0, le=50, description="shuffles per feature for permutation importance"
    )
    seed: int = 0
    registry: RegistrySpec = Field(default_factory=RegistrySpec)

    @field_validator("gates")
    @classmethod
    def _parse_gates(cls, value: list[str]) -> list[str]:
        return [str(parse_gate(text)) for text in value]  # normalised: `metric op value`

    @field_validator("threshold")
    @classmethod
    def _probability(cls, value: str | float) -> str | float:
        if not isinstance(value, str) and not 0 < value < 1:
            raise ValueError("threshold must be f1 or a probability between 0 and 1")
        return value

    def parsed_gates(self) -> list[Gate]:
        return [parse_gate(text) for text in self.gates]
