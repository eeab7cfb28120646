"""Feature importance: the model's own (total gain for boosted trees) and permutation
importance on the test split (how much the metric worsens when a feature is shuffled)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlbatch.scoring import TrainedModel

MAX_ROWS = 2000  # permutation importance on a sample: enough to rank the top features
MAX_FEATURES = 20  # the top features by the model's own importance (or the first) are permuted


def model_importance(model: TrainedModel) -> tuple[dict[str, float], str]:
    """Each feature's share of the model's own importance, and what that importance is:
    total gain (boosted trees), impurity decrease (forests), |coefficient| (linear). Empty
    when the model reports none per input feature."""
    features = model.info["features"]
    kind = "total gain"
    if model.family == "ensemble":
        # The members' shares, weighted as the ensemble weighs their predictions.
        values = np.zeros(len(features))
        kinds = []
        for weight, member in model.predictor:
            shares, member_kind = model_importance(member)
            kinds.append(member_kind)
            values += weight * np.array([shares.get(name, 0.0) for name in features])
        kind = "weighted member shares (" + ", ".join(sorted(set(kinds))) + ")"
    elif model.family == "xgboost":
        # The booster's own names key its scores (f0, f1, ... when it was given none).
        native = model.predictor.feature_names or [f"f{i}" for i in range(len(features))]
        gains = model.predictor.get_score(importance_type="total_gain")
        values = np.array([gains.get(name, 0.0) for name in native], dtype="float64")
    elif model.family == "lightgbm":
        values = model.predictor.feature_importance(importance_type="gain").astype("float64")
    else:
        estimator = model.predictor
        estimator = getattr(estimator, "steps", [(None, estimator)])[-1][1]  # a pipeline's last
        if hasattr(estimator, "feature_importances_"):
            values = np.asarray(estimator.feature_importances_, dtype="float64")
            kind = "impurity decrease"
        elif hasattr(estimator, "coef_"):
            values = np.abs(np.atleast_2d(estimator.coef_)).mean(axis=0)
            kind = "|coefficient|"
        else:
            return {}, kind
    if len(values) != len(features) or values.sum() <= 0:
        return {}, kind  # e.g. a linear model behind a one-hot tail: weights per category
    shares = values / values.sum()
    ranked = sorted(zip(features, map(float, shares), strict=True), key=lambda i: -i[1])
    return dict(ranked), kind


def permutation_importance(
    score: Callable[[np.ndarray, np.ndarray], float | None], x: np.ndarray, y: np.ndarray, *,
    features: list[str], higher_is_better: bool, repeats: int, seed: int,
    order: list[str] | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """{feature: {mean, std}} of the metric's loss when the feature's column is shuffled,
    most important first. score(x, y) computes the metric of the model's predictions."""
    if repeats == 0:
        return {}
    rng = np.random.default_rng(seed)
    if len(y) > MAX_ROWS:
        keep = rng.choice(len(y), MAX_ROWS, replace=False)
        x, y = x[keep], y[keep]
    baseline = score(x, y)
    if baseline is None:
        return {}
    ranked = [f for f in (order or features) if f in features][:MAX_FEATURES]
    found = {}
    for name in ranked:
        column = features.index(name)
        losses = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, column] = rng.permutation(shuffled[:, column])
            value = score(shuffled, y)
            if value is not None:
                losses.append(baseline - value if higher_is_better else value - baseline)
        if losses:
            found[name] = {"mean": float(np.mean(losses)), "std": float(np.std(losses))}
    return dict(sorted(found.items(), key=lambda item: -item[1]["mean"]))
