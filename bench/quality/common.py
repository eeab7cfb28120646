"""What every contender shares: reading a table's train/test CSVs, writing its test
predictions in one format, and (in mlbatch's venv) scoring them all the same way.

Runs in each contender's venv: pandas, numpy and scikit-learn only.

Prediction files are CSVs, one row per test row in the order of test.csv: `prediction`
(regression) or one `p:<label>` column per class (classification; labels as text).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

METRICS = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
HIGHER_IS_BETTER = {"roc_auc": True, "log_loss": False, "rmse": False}


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--task", required=True, choices=sorted(METRICS))
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--predictions", required=True, help="where to write them (CSV)")
    return parser.parse_args()


def read_table(path: str, target: str, task: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target; classification labels as text, so every tool sees the same."""
    frame = pd.read_csv(path)
    y = frame.pop(target)
    return frame, (y.astype(str) if task != "regression" else y.astype("float64"))


def write_predictions(path: str, task: str, values, classes=None) -> None:
    values = np.asarray(values, dtype="float64")
    if task == "regression":
        frame = pd.DataFrame({"prediction": values.reshape(-1)})
    else:
        if values.ndim == 1:  # binary: the probability of classes[1]
            values = np.column_stack([1 - values, values])
        frame = pd.DataFrame(values, columns=[f"p:{c}" for c in classes])
    frame.to_csv(path, index=False)


def report(**fields) -> None:
    """The contender's last stdout line: what it chose, how long it took."""
    print(json.dumps(fields, default=str))


class Clock:
    def __enter__(self) -> Clock:
        self.started = time.time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = round(time.time() - self.started, 1)


def score(task: str, y_test: pd.Series, predictions: pd.DataFrame) -> dict:
    """The task's metric (and a second, for reading) of one contender's test predictions."""
    from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score

    if len(predictions) != len(y_test):
        raise ValueError(f"{len(predictions)} predictions for {len(y_test)} test rows")
    if task == "regression":
        p = predictions["prediction"].to_numpy(dtype="float64")
        if not np.isfinite(p).all():
            raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
        y = y_test.to_numpy(dtype="float64")
        return {"rmse": float(np.sqrt(np.mean((y - p) ** 2))), "r2": float(r2_score(y, p))}
    y = y_test.astype(str).to_numpy()
    labels = sorted(set(y) | {c[2:] for c in predictions.columns if c.startswith("p:")})
    matrix = np.column_stack([
        predictions[f"p:{c}"].to_numpy(dtype="float64") if f"p:{c}" in predictions
        else np.zeros(len(predictions)) for c in labels
    ])  # fmt: skip
    matrix = np.clip(matrix, 1e-15, None)
    matrix /= matrix.sum(axis=1, keepdims=True)
    accuracy = float(accuracy_score(y, np.asarray(labels)[matrix.argmax(axis=1)]))
    if task == "binary":
        positive = sorted(set(y))[1]
        auc = roc_auc_score(y == positive, matrix[:, labels.index(positive)])
        return {"roc_auc": float(auc), "accuracy": accuracy}
    return {"log_loss": float(log_loss(y, matrix, labels=labels)), "accuracy": accuracy}
