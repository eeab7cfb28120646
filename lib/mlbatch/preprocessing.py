"""The fitted feature transformer: built by features, applied by evaluate and predict.

It is saved with skops, never as a pickle: loading checks every type in the file against
an allow-list first, so a transformer read from a shared bucket cannot run arbitrary code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

from mlbatch.errors import BadInput

DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")
UNKNOWN_CODE = -1  # categories unseen in training, and missing values

# Every type a transformer file may contain (checked before loading).
TRUSTED_TYPES = frozenset({
    "mlbatch.preprocessing.expand_dates",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype", "builtins.slice", "builtins.type", "builtins.object",
    "numpy.float64", "numpy.int64", "numpy.bool_", "numpy.str_", "numpy.ndarray",
})  # fmt: skip


def expand_dates(frame: pd.DataFrame, *, date_columns: list[str]) -> pd.DataFrame:
    """Replace each datetime column by numeric parts (year, month, day, weekday, hour)."""
    frame = frame.copy()
    for column in date_columns:
        values = pd.to_datetime(frame[column], utc=True, errors="coerce")
        for part in DATE_PARTS:
            frame[f"{column}_{part}"] = getattr(values.dt, part).astype("float64")
        frame = frame.drop(columns=column)
    return frame


def build_transformer(
    *,
    numeric: list[str],
    categorical: list[str],
    dates: list[str],
    max_categories: int,
) -> Pipeline:
    """Date parts, then median imputation for numbers and integer codes for categories."""
    date_parts = [f"{column}_{part}" for column in dates for part in DATE_PARTS]
    columns = ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy="median", keep_empty_features=True),
                numeric + date_parts,
            ),
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=UNKNOWN_CODE,
                    encoded_missing_value=UNKNOWN_CODE,
                    max_categories=max_categories,
                    dtype=np.float64,
                ),
                categorical,
            ),
        ],  # fmt: skip
        remainder="drop",
        verbose_feature_names_out=False,
    )
    steps = [("dates", FunctionTransformer(expand_dates, kw_args={"date_columns": dates}))]
    return Pipeline([*steps, ("columns", columns)]).set_output(transform="pandas")


def transform(transformer: Pipeline, frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Apply a fitted transformer; categorical codes come out as int32."""
    prepared = transformer.transform(frame)
    for column in categorical:
        prepared[column] = prepared[column].astype("int32")
    return prepared


def categorical_as_strings(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categories as strings with real missing values, so the encoder sees one vocabulary."""
    frame = frame.copy()
    for column in categorical:
        values = frame[column]
        frame[column] = values.astype("str").where(values.notna(), np.nan).astype(object)
    return frame


def save_transformer(transformer: Pipeline, path: Path) -> None:
    import skops.io as sio

    sio.dump(transformer, path)


def load_transformer(path: Path) -> Pipeline:
    """Load a transformer file, refusing any type outside the allow-list."""
    import skops.io as sio

    untrusted = set(sio.get_untrusted_types(file=path)) - TRUSTED_TYPES
    if untrusted:
        raise BadInput(f"{path}: refusing to load types not on the allow-list: {sorted(untrusted)}")
    return sio.load(path, trusted=sorted(sio.get_untrusted_types(file=path)))
