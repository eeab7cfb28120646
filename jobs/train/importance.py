"""How much each hyperparameter moved the metric, learned from a family's trials: a small
random forest maps the configs to the metric, and its impurity importances are the shares
(the fANOVA idea, cheaply). With few trials the shares are rough; the report says how many."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

MIN_TRIALS = 4  # fewer completed trials than this say nothing about importance


def parameter_table(trials: list[dict], metric: str) -> pd.DataFrame:
    """Completed trials as rows: one column per hyperparameter, and the metric."""
    rows = [{**t["config"], metric: t[metric]} for t in trials if t["status"] == "ok"]
    return pd.DataFrame(rows)


def importances(table: pd.DataFrame, metric: str, *, seed: int = 0) -> dict[str, float]:
    """Share of the metric's variation each varying hyperparameter explains (sums to 1);
    empty when there are too few trials or nothing varies."""
    varying = [c for c in table.columns if c != metric and table[c].nunique() > 1]
    if len(table) < MIN_TRIALS or not varying or table[metric].nunique() < 2:
        return {}
    features = pd.DataFrame({
        c: table[c] if pd.api.types.is_numeric_dtype(table[c])
        else table[c].astype("category").cat.codes for c in varying
    })  # fmt: skip
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=seed)
    forest.fit(features.to_numpy(dtype="float64"), table[metric].to_numpy(dtype="float64"))
    shares = forest.feature_importances_
    order = np.argsort(shares)[::-1]
    return {varying[i]: float(shares[i]) for i in order}
