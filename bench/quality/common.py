"""What the baseline scripts share: reading mlbatch's prepared split files, scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "__target"  # the features stage's encoded target column
ROW_ID = "__row_id"


def read_frame(path: str) -> pd.DataFrame:
    """A prepared split, features and target, without the row id."""
    return pd.read_parquet(path).drop(columns=[ROW_ID])


def read_split(path: str) -> tuple[pd.DataFrame, np.ndarray]:
    frame = read_frame(path)
    return frame.drop(columns=[TARGET]), frame[TARGET].to_numpy()


def score(metric: str, task: str, y, predictions) -> float:
    from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

    predictions = np.asarray(predictions)
    if metric == "roc_auc":
        if task == "binary":
            return float(roc_auc_score(y, predictions[:, 1] if predictions.ndim == 2
                                       else predictions))  # fmt: skip
        return float(roc_auc_score(y, predictions, multi_class="ovr"))
    if metric == "log_loss":
        return float(log_loss(y, predictions))
    return float(np.sqrt(mean_squared_error(y, predictions)))
