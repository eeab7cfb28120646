"""Strong default configurations tried first in each family's search.

FLAML and AutoGluon win short budgets by starting from configurations known to do well on
most tables, not from random points: a random first trial with depth 10 and learning rate
0.02 can eat a 60 s budget and lose to the library's defaults. These are a few such
configurations per family (library defaults with a moderate learning rate, a larger and a
more regularised variant, after AutoGluon's GBM/GBMLarge and FLAML's starting points); the
search evaluates them before its searcher proposes anything, and the searcher learns
from their scores. Early stopping on the validation split picks their rounds.
"""

from __future__ import annotations

import math

from ray.tune.search.sample import Categorical, Domain, Float, Integer

# LightGBM's defaults with AutoGluon's learning rate: the strongest single start.
_LIGHTGBM_DEFAULTS = {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                      "min_child_weight": 1e-3, "subsample": 1.0, "colsample_bytree": 1.0,
                      "reg_lambda": 1e-3, "reg_alpha": 1e-3, "cat_smooth": 10.0,
                      "extra_trees": False}  # fmt: skip

PORTFOLIO: dict[str, list[dict]] = {
    "lightgbm": [
        _LIGHTGBM_DEFAULTS,
        # The same with random split thresholds (AutoGluon's LightGBMXT), for
        # classification: smoother on small, noisy tables. Where the space has no
        # extra_trees (regression) it is the defaults again, and tried once.
        {**_LIGHTGBM_DEFAULTS, "extra_trees": True},
        # AutoGluon's GBMLarge: many leaves, slow learning, most features per tree.
        {"learning_rate": 0.03, "num_leaves": 128, "min_child_samples": 5,
         "min_child_weight": 1e-3, "subsample": 0.9, "colsample_bytree": 0.9,
         "reg_lambda": 1e-3, "reg_alpha": 1e-3, "cat_smooth": 10.0, "extra_trees": False},
        # Small, regularised trees that learn fast: for small or noisy tables.
        {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 50,
         "min_child_weight": 1.0, "subsample": 0.8, "colsample_bytree": 0.8,
         "reg_lambda": 1.0, "reg_alpha": 1e-3, "cat_smooth": 30.0, "extra_trees": False},
    ],
    "xgboost": [
        # XGBoost's defaults (depth 6, no sampling) at AutoGluon's learning rate of 0.1.
        {"learning_rate": 0.1, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
         "colsample_bytree": 1.0, "reg_lambda": 1.0, "reg_alpha": 1e-3},
        # Shallow trees with row and column sampling: smooth, hard to overfit.
        {"learning_rate": 0.05, "max_depth": 4, "min_child_weight": 1.0, "subsample": 0.8,
         "colsample_bytree": 0.8, "reg_lambda": 1.0, "reg_alpha": 1e-3},
        # Deep, regularised trees for tables with interactions.
        {"learning_rate": 0.05, "max_depth": 8, "min_child_weight": 3.0, "subsample": 0.8,
         "colsample_bytree": 0.7, "reg_lambda": 5.0, "reg_alpha": 1e-3},
    ],
    "random_forest": [
        # Close to scikit-learn's defaults, with the space's bounds on depth and rows.
        {"n_estimators": 300, "max_depth": 16, "min_samples_leaf": 5, "max_features": 0.5,
         "max_samples": 0.8},
    ],
    "linear": [
        {"alpha": 1.0},  # ridge's default
        {"C": 1.0, "class_weight": "none"},  # logistic regression's default
    ],
}  # fmt: skip


def portfolio(family: str, space: dict) -> list[dict]:
    """The family's default configurations, fitted to the space the search uses.

    Every point names exactly the searched (Domain) keys, as Tune's Optuna searcher
    requires: a value outside the spec's range is moved to the nearest bound, a choice the
    spec left out is dropped, a searched key the portfolio does not know gets the range's
    middle. Configurations that end up identical are tried once.
    """
    searched = {name: value for name, value in space.items() if isinstance(value, Domain)}
    if not searched:
        return []
    points: list[dict] = []
    for config in PORTFOLIO.get(family, []):
        if not set(config) & set(searched):
            continue  # a configuration of the other task's model (ridge vs logistic)
        point = {name: _fit(domain, config.get(name)) for name, domain in searched.items()}
        if None not in point.values() and point not in points:
            points.append(point)
    return points


def _fit(domain: Domain, value):
    """value within the domain (None when a choice does not offer it)."""
    if isinstance(domain, Categorical):
        if value is None:
            return domain.categories[0]
        return value if value in domain.categories else None
    if isinstance(domain, (Float, Integer)):
        # Tune's randint and lograndint exclude their upper end
        high = domain.upper - 1 if isinstance(domain, Integer) else domain.upper
        if value is None:
            log = type(domain.sampler).__name__.lstrip("_") == "LogUniform"
            value = math.sqrt(domain.lower * high) if log else (domain.lower + high) / 2
        value = min(max(value, domain.lower), high)
        return int(round(value)) if isinstance(domain, Integer) else float(value)
    return None  # a domain of another kind (a function): leave the point out
