"""The `explore:` section: how much to sample, and the thresholds of the column advice."""

from __future__ import annotations

from pydantic import Field

from mlbatch.spec.base import Model


class ExploreSpec(Model):
    sample_rows: int = Field(
        default=100_000, gt=0,
        description="rows drawn (seeded) for plots, relations and single-column power",
    )  # fmt: skip
    seed: int = 0
    leak_auc: float = Field(
        default=0.85, gt=0.5, le=1,
        description="classification: a column whose own cross-fitted ROC AUC on the target "
        "exceeds this is advised dropped as a suspected leak",
    )  # fmt: skip
    leak_r2: float = Field(
        default=0.8, gt=0, le=1,
        description="regression: the same, with the column's own cross-fitted R²",
    )  # fmt: skip
    mostly_missing: float = Field(
        default=0.9, gt=0, le=1, description="a column missing in this share of rows is dropped"
    )
    near_constant: float = Field(
        default=0.995, gt=0.5, le=1,
        description="a column whose most frequent value covers this share of its values is "
        "dropped",
    )  # fmt: skip
    high_cardinality: int = Field(
        default=1000, gt=1, description="a categorical with more distinct values is flagged"
    )
    notebook: bool = Field(default=True, description="build and execute notebook.ipynb")
