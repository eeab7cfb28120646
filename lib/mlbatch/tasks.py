"""Learning tasks: inferring one from a target column, and the metric each is tuned on."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from mlbatch.errors import BadInput

ResolvedTask = Literal["binary", "multiclass", "regression"]
MAX_CLASSES = 50  # more distinct labels than this is not a classification we infer


def infer_task(target: pd.Series) -> ResolvedTask:
    """binary (2 values), multiclass (few labels or integer codes), else regression."""
    values = target.dropna()
    if values.empty:
        raise BadInput(f"target column {target.name!r} has no values")
    distinct = values.nunique()
    if distinct < 2:
        raise BadInput(f"target column {target.name!r} has a single value: nothing to learn")
    if distinct == 2:
        return "binary"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        if distinct > MAX_CLASSES:
            raise BadInput(
                f"target column {target.name!r} has {distinct} distinct labels; "
                f"set task: to say what to learn"
            )
        return "multiclass"
    integral = bool((values == values.round()).all())
    return "multiclass" if integral and distinct <= 20 else "regression"


def resolve_task(task: str, target: pd.Series) -> ResolvedTask:
    """The declared task, checked against the data, or the inferred one for "auto"."""
    inferred = infer_task(target)
    if task == "auto":
        return inferred
    if task == "binary" and target.dropna().nunique() != 2:
        raise BadInput(
            f"task is binary but target {target.name!r} has {target.dropna().nunique()} values"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise BadInput(f"task is regression but target {target.name!r} is not numeric")
    return task  # type: ignore[return-value]


# (metric name, "max" or "min") that the search optimises on the validation split.
TUNING_METRIC: dict[str, tuple[str, str]] = {
    "binary": ("roc_auc", "max"),
    "multiclass": ("log_loss", "min"),
    "regression": ("rmse", "min"),
}
