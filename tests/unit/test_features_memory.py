"""What keeps the features stage's memory per row small, without changing its outputs:
category keys that share one string per category, and splits written one at a time that
equal the all-at-once preparation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from test_features_treatment import KINDS, ROWS, raw

from mlbatch.input_values import category_keys
from mlbatch.spec import FeaturesSpec
from mlbatch_jobs.features import stage
from mlbatch_jobs.features.prepare import fit_prepare
from mlbatch_jobs.features.treatment import choose


def test_category_keys_share_one_string_per_category():
    for values in (
        pd.Series(["b", "a", None, "b"] * 2500, dtype="str"),
        pd.Series([3.0, 1.5, np.nan, 3.0] * 2500),
        pd.Series(["b", 7, None, "b"] * 2500, dtype=object),
    ):
        keys = category_keys(values)
        present = [v for v in keys if isinstance(v, str)]
        assert keys.dtype == object and len(present) == 7500
        assert len({id(v) for v in present}) == 2  # not one object per row
        assert keys.isna().tolist() == values.isna().tolist()
    assert category_keys(pd.Series([3.0, 1.5, np.nan])).tolist()[:2] == ["3", "1.5"]
    assert category_keys(pd.Series([], dtype="str")).tolist() == []


def test_splits_written_one_at_a_time_equal_the_all_at_once_preparation(tmp_path):
    table, labels = raw()
    rows = {"train": np.arange(0, ROWS, 3), "valid": np.arange(1, ROWS, 3),
            "test": np.arange(2, ROWS, 3)}  # fmt: skip
    plan, _ = choose(table.iloc[rows["train"]], KINDS, FeaturesSpec(), task="binary", seed=0)
    expected = fit_prepare(plan, table, labels, rows)
    fitted = stage.write_prepared(tmp_path, plan, table, labels, rows)
    assert fitted.features == expected.features
    for name, frame in expected.frames.items():
        written = pq.read_table(tmp_path / f"{name}.parquet").to_pandas()
        pd.testing.assert_frame_equal(written, frame, check_exact=True)
