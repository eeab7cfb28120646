"""How columns relate to each other and to the target, and where the outliers are.

Computed on the explore sample (a seeded random draw of rows): correlations of numeric
columns (Spearman, so a few extreme values do not dominate), Cramér's V between
categoricals, the target per bin or category of the most predictive columns, and
outlier counts by the IQR rule and by z-score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlbatch_jobs.explore import power
from mlbatch_jobs.explore.summary import json_value

MAX_MATRIX = 25  # columns in a correlation or association matrix
MAX_LEVELS = 50  # categoricals with more distinct values are left out of Cramér's V
TOP_CATEGORIES = 10  # categories shown per column; the rest are "other"
RELATION_COLUMNS = 12  # columns drawn against the target
IQR_FENCE = 1.5
Z_LIMIT = 3.0


def relations(sample: pd.DataFrame, *, target: str, task: str, order: list[str]) -> dict[str, Any]:
    """Everything the report's relation sections draw; `order` ranks columns (most
    predictive first) and decides which make the cut."""
    numeric = [c for c in order if _is_number(sample[c])]
    categorical = [c for c in order if _is_category(sample[c])]
    if task != "regression":
        categorical = [target, *categorical]
    elif _is_number(sample[target]):
        numeric = [target, *numeric]
    return {
        "correlation": correlation(sample, numeric[:MAX_MATRIX]),
        "association": association(sample, categorical[:MAX_MATRIX]),
        "by_target": {
            column: target_by_key(sample[column], sample[target], task)
            for column in order[:RELATION_COLUMNS]
        },
        "outliers": outliers(sample, [c for c in numeric if c != target]),
        "missing_together": missing_together(sample),
    }


def correlation(sample: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """Spearman correlation matrix of numeric columns: Pearson's on each column's ranks
    (ranked once over its present values; pairs use the rows where both are present).
    pandas' own Spearman re-ranks every pair, which is k² sorts of the sample."""
    varying = [c for c in columns if sample[c].nunique() > 1]
    matrix = sample[varying].astype("float64").rank().corr()
    return {"columns": varying, "matrix": _rounded(matrix.to_numpy())}


def missing_together(sample: pd.DataFrame) -> dict[str, Any]:
    """Correlation of the was-missing indicators of columns with some values missing."""
    shares = sample.isna().mean()
    partly = shares[(shares > 0) & (shares < 1)].sort_values(ascending=False)
    columns = partly.index[:MAX_MATRIX].tolist()
    matrix = sample[columns].isna().astype("float64").corr()
    return {"columns": columns, "matrix": _rounded(matrix.to_numpy())}


def association(sample: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """Cramér's V (bias-corrected) between categorical columns; missing is a category."""
    usable = [c for c in columns if 1 < sample[c].nunique(dropna=False) <= MAX_LEVELS]
    codes = {c: power.value_keys(sample[c]) for c in usable}
    matrix = np.eye(len(usable))
    for i, a in enumerate(usable):
        for j in range(i + 1, len(usable)):
            matrix[i, j] = matrix[j, i] = cramers_v(codes[a], codes[usable[j]])
    return {"columns": usable, "matrix": _rounded(matrix)}


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Bergsma's bias-corrected Cramér's V of two integer-coded columns."""
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = ((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum()
    rows, cols = table.shape
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    rows_c, cols_c = rows - (rows - 1) ** 2 / (n - 1), cols - (cols - 1) ** 2 / (n - 1)
    scale = min(rows_c - 1, cols_c - 1)
    return float(np.sqrt(phi2 / scale)) if scale > 0 else 0.0


def target_by_key(values: pd.Series, target: pd.Series, task: str) -> dict[str, Any]:
    """Per bin (numbers, dates) or top category: rows and the target's rate, mean or class
    shares, in the column's order."""
    if power.ordered(values):
        keys = power.ordered_keys(values)
        labels = _bin_labels(values, keys)
    else:
        top = values.value_counts().index[:TOP_CATEGORIES]
        text = values.astype("object").astype("str")
        shown = np.where(values.isna(), "missing", np.where(values.isin(top), text, "other"))
        keys, uniques = pd.factorize(shown, sort=True)
        labels = dict(enumerate(uniques))
    frame = pd.DataFrame({"key": keys, "target": target.to_numpy()})
    groups = frame.groupby("key")["target"]
    result: dict[str, Any] = {"labels": [labels[k] for k in groups.size().index]}
    result["rows"] = groups.size().tolist()
    if task == "regression":
        result["mean"] = _rounded(groups.mean().to_numpy())
    else:
        shares = pd.crosstab(frame["key"], frame["target"], normalize="index")
        result["classes"] = [json_value(c) for c in shares.columns.tolist()]
        result["shares"] = _rounded(shares.to_numpy())
    return result


def outliers(sample: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """IQR-fence and |z| > 3 counts per numeric column, most outlying first."""
    found = []
    for column in columns:
        values = pd.to_numeric(sample[column], errors="coerce").dropna().to_numpy("float64")
        if len(values) < 2:
            continue
        q1, q3 = np.quantile(values, [0.25, 0.75])
        fence = IQR_FENCE * (q3 - q1)
        iqr = int(((values < q1 - fence) | (values > q3 + fence)).sum())
        std = values.std()
        z = int((np.abs(values - values.mean()) > Z_LIMIT * std).sum()) if std > 0 else 0
        found.append({
            "column": column, "rows": len(values), "iqr": iqr, "iqr_share": iqr / len(values),
            "z": z, "z_share": z / len(values), "low": float(q1 - fence),
            "high": float(q3 + fence),
        })  # fmt: skip
    return sorted(found, key=lambda entry: (-entry["iqr_share"], entry["column"]))


def _bin_labels(values: pd.Series, keys: np.ndarray) -> Mapping[int, str]:
    """A label per ordered key: the range of values it holds, or 'missing'."""
    labels = {}
    for key in np.unique(keys):
        held = values[keys == key].dropna()
        if held.empty:
            labels[int(key)] = "missing"
        elif held.min() == held.max():
            labels[int(key)] = _short(held.min())
        else:
            labels[int(key)] = f"{_short(held.min())}–{_short(held.max())}"
    return labels


def _short(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _is_category(values: pd.Series) -> bool:
    return not _is_number(values) and not pd.api.types.is_datetime64_any_dtype(values)


def _rounded(array: np.ndarray) -> list:
    """Nested lists of 4-digit floats; NaN (an undefined correlation) as None."""
    rounded = np.round(np.asarray(array, dtype="float64"), 4)
    return np.where(np.isnan(rounded), None, rounded).tolist()
