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
        "(training rows only) exceeds this is flagged as a suspected leak: reported in "
        "explore's and evaluate's reports and the run summary, kept unless "
        "drop_suspected_leaks",
    )  # fmt: skip
    leak_r2: float = Field(
        default=0.8, gt=0, le=1,
        description="regression: the same, with the column's own cross-fitted R²",
    )  # fmt: skip
    drop_suspected_leaks: bool = Field(
        default=False,
        description="drop the suspected leaks (power above leak_auc/leak_r2) instead of only "
        "flagging them. Off by default: a strong legitimate predictor scores as high as a "
        "leak, and dropping it ruins the model; turn it on for tables with unknown lineage "
        "where a leak is the bigger risk",
    )  # fmt: skip
    mostly_missing: float = Field(
        default=0.9, gt=0, le=1, description="a column missing in this share of rows is dropped"
    )
    near_constant: float = Field(
        default=0.995, gt=0.5, le=1,
        description="a column whose most frequent value covers this share of its values is "
        "flagged (kept: its rare values may be what predicts a rare class)",
    )  # fmt: skip
    high_cardinality: int = Field(
        default=1000, gt=1, description="a categorical with more distinct values is flagged"
    )
    notebook: bool = Field(default=True, description="build and execute notebook.ipynb")
