"""The rows explore may score columns against the target on: features' training split.

Predictive power and integer-code detection read the target. Measured on every row, they
would let valid and test rows (the ones that judge the model) shape which columns the
model gets. So explore splits exactly as features will (the same function, the spec's
`features.split` with its seed) and keeps the training rows; summaries that never read
the target still describe the whole table.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlbatch.errors import BadInput
from mlbatch.spec import PipelineSpec
from mlbatch.splitting import encode_target, split_rows


def training_rows(table: pa.Table, spec: PipelineSpec, *, target: str, task: str) -> np.ndarray:
    """Sorted positions of the rows features will train on."""
    if target not in table.column_names:
        raise BadInput(f"target {target!r} is not a column of etl's table")
    columns = split_columns(table.column_names, spec, target=target)
    frame = table.select(columns).to_pandas()
    labels, _ = encode_target(frame[target], task)
    return split_rows(frame, labels, task, spec.features.split).rows["train"]


def training_table(
    table: pa.Table, spec: PipelineSpec, *, target: str, task: str
) -> tuple[pa.Table, str | None]:
    """The training rows of the table, in their order; and None, or why every row is used.

    A table features cannot split (too few rows or classes for the fractions) still gets
    its report: explore then scores every row and says so. Nothing leaks through that:
    features fails on the same table with the same error, so no model is trained.
    """
    rows, unsplit = training_positions(table, spec, target=target, task=task)
    return (table, unsplit) if rows is None else (table.take(pa.array(rows)), None)


def training_positions(
    table: pa.Table, spec: PipelineSpec, *, target: str, task: str
) -> tuple[np.ndarray | None, str | None]:
    """training_rows, or (None, why) when features cannot split the table: every row is
    scored then. `table` needs only the target and the split's columns."""
    try:
        return training_rows(table, spec, target=target, task=task), None
    except BadInput as error:
        if target not in table.column_names:
            raise
        return None, f"every row scored: features cannot split this table ({error})"


def split_columns(names: list[str], spec: PipelineSpec, *, target: str) -> list[str]:
    """The columns training_rows reads: the target and the split's time or group column."""
    split = spec.features.split
    named = [c for c in (split.time_column, split.group_column) if c in names]
    return [target, *[c for c in named if c != target]]
