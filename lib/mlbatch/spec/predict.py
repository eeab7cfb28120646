"""The `predict:` section: a batch-scoring pipeline (etl -> predict) with a registered model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlbatch.errors import BadInput
from mlbatch.spec.base import Model


class PredictSpec(Model):
    model: str = Field(
        description="NAME@ALIAS (e.g. flights-delay@production), NAME:VERSION, or a run id "
        "(that run's trained model)"
    )
    keep_columns: list[str] = Field(
        default_factory=list,
        description="input columns copied next to the predictions (default: the id_columns)",
    )
    output: str | None = Field(
        default=None,
        description="where to publish the predictions too (.parquet or .csv; a URI, or a path "
        "relative to the storage root); the stage's attempt folder always has a copy",
    )

    on_unparseable: Literal["warn", "fail"] = Field(
        default="warn",
        description="numbers in the rows that cannot be read: warn (scored as missing; counted "
        "per column in the log, predictions.json and the run summary) or fail (exit 2, naming "
        "the columns)",
    )

    @field_validator("model")
    @classmethod
    def _reference(cls, value: str) -> str:
        from mlbatch.registry import parse_reference

        try:
            parse_reference(value)
        except BadInput as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("output")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith((".parquet", ".csv")):
            raise ValueError(f"output {value!r} must end in .parquet or .csv")
        return value
