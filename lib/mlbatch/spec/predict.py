"""The `predict:` section: a batch-scoring pipeline (etl -> predict) with a registered model."""

from __future__ import annotations

from pydantic import Field

from mlbatch.spec.base import Model


class PredictSpec(Model):
    model: str = Field(
        description="NAME@ALIAS (e.g. flights-delay@production), NAME:VERSION, or a run id"
    )
    keep_columns: list[str] = Field(
        default_factory=list,
        description="input columns copied next to the predictions (default: the id_columns)",
    )
    output: str | None = Field(
        default=None,
        description="where to write the predictions (.parquet or .csv; relative to the storage "
        "root); default: predictions.parquet in the predict stage's attempt folder",
    )
