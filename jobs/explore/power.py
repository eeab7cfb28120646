"""Single-column predictive power: how well one column alone predicts the target.

A column becomes keys (a numeric column with many values: quantile bins, plus one for
missing; any other column: its values). The target's mean, or class shares, per key is
learned on one half of the rows and scored on the other half, then the halves swap. This
cross-fitting matters: a column unique per row memorises the target in-sample and scores
nothing here. Scores are ROC AUC (binary; macro one-vs-rest for multiclass) or R²
(regression).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 20  # quantile bins of a numeric column with more distinct values than this
SMOOTHING = 10.0  # rows' worth of the overall rate mixed into every key's estimate
METRIC = {"binary": "roc_auc", "multiclass": "roc_auc_ovr_macro", "regression": "r2"}


def target_matrix(target: pd.Series, task: str) -> np.ndarray | None:
    """Rows x outputs: 0/1 for binary, one-hot classes for multiclass, the value for
    regression; None when there is nothing to score against (a single class)."""
    if task == "regression":
        values = target.to_numpy(dtype="float64")
        return values[:, None] if np.nanstd(values) > 0 else None
    codes, classes = pd.factorize(target, sort=True)
    if len(classes) < 2:
        return None
    onehot = np.eye(len(classes))[codes]
    return onehot[:, 1:] if task == "binary" else onehot


def folds_of(rows: int, seed: int) -> np.ndarray:
    """A seeded half-and-half assignment of rows, shared by every column's score."""
    return np.random.default_rng(seed).permutation(rows) % 2


def ordered_keys(values: pd.Series) -> np.ndarray:
    """Integer keys that respect the column's order: quantile bins, or the values themselves
    when there are few; missing values get a key of their own."""
    numbers = _as_numbers(values)
    present = ~np.isnan(numbers)
    distinct = np.unique(numbers[present])
    if len(distinct) <= BINS:
        keys = np.searchsorted(distinct, numbers)
    else:
        edges = np.unique(np.quantile(numbers[present], np.linspace(0, 1, BINS + 1)[1:-1]))
        keys = np.searchsorted(edges, numbers, side="right")
    return np.where(present, keys, keys.max(initial=0) + 1)


def value_keys(values: pd.Series) -> np.ndarray:
    """One key per distinct value (missing shares one key)."""
    codes, _ = pd.factorize(values, use_na_sentinel=False)
    return codes


def score(keys: np.ndarray, y: np.ndarray, task: str, folds: np.ndarray) -> float:
    """Cross-fitted score of predicting y from the keys alone."""
    predicted = np.empty_like(y, dtype="float64")
    size = int(keys.max(initial=0)) + 1
    for fold in (0, 1):
        fit, held = folds != fold, folds == fold
        prior = y[fit].mean(axis=0)
        counts = np.bincount(keys[fit], minlength=size)[:, None]
        sums = np.stack(
            [np.bincount(keys[fit], weights=y[fit, j], minlength=size) for j in range(y.shape[1])],
            axis=1,
        )
        estimate = (sums + SMOOTHING * prior) / (counts + SMOOTHING)
        predicted[held] = estimate[keys[held]]
    if task == "regression":
        residual = ((y - predicted) ** 2).sum()
        return float(1 - residual / ((y - y.mean()) ** 2).sum())
    # Macro one-vs-rest for multiclass (binary has one column): each class against the rest.
    return float(np.mean([roc_auc(y[:, j], predicted[:, j]) for j in range(y.shape[1])]))


def roc_auc(positive: np.ndarray, predicted: np.ndarray) -> float:
    """ROC AUC (ties count half) in one pass over the distinct predictions: a column's
    predictions take one value per key, so this is far quicker than sorting every row."""
    values, inverse = np.unique(predicted, return_inverse=True)
    positives = np.bincount(inverse, weights=positive, minlength=len(values))
    negatives = np.bincount(inverse, minlength=len(values)) - positives
    below = np.cumsum(negatives) - negatives
    pairs = positives.sum() * negatives.sum()
    return float((positives * (below + 0.5 * negatives)).sum() / pairs) if pairs else 0.5


def column_power(values: pd.Series, y: np.ndarray, task: str, folds: np.ndarray) -> float:
    """A column's own power: ordered keys for numbers and dates, values otherwise."""
    if ordered(values):
        return score(ordered_keys(values), y, task, folds)
    return score(value_keys(values), y, task, folds)


def power_scores(frame: pd.DataFrame, target: str, task: str, *, seed: int) -> dict[str, float]:
    """column -> its single-column power on the target (every column but the target)."""
    y = target_matrix(frame[target], task)
    if y is None:
        return {}
    folds = folds_of(len(frame), seed)
    return {
        column: round(column_power(frame[column], y, task, folds), 4)
        for column in frame.columns
        if column != target
    }


def ordered(values: pd.Series) -> bool:
    """Numbers and dates: columns whose values have an order worth keeping."""
    return (
        pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    ) or _dates(values)


def _dates(values: pd.Series) -> bool:
    """datetime64, or Arrow dates that pandas keeps as datetime.date objects."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "date"


def _as_numbers(values: pd.Series) -> np.ndarray:
    if _dates(values):
        since_epoch = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
        return since_epoch.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
