"""Confidence intervals of the test metrics by the bootstrap: resample the test rows with
replacement, recompute every metric, take the percentiles.

Above `max_rows` test rows each resample draws `max_rows` rows, not all of them (the
m-out-of-n bootstrap), so the cost stops growing with the test split. The metrics here
(AUC, log loss, accuracy, F1, RMSE, R², ...) vary as 1/sqrt(rows): a resample of m rows
spreads sqrt(n/m) times wider than one of n, so each percentile's distance from the
full-split metric is scaled by sqrt(m/n). With m = n nothing is scaled: the plain
percentile bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_intervals(
    metrics_of: Callable[[np.ndarray], dict[str, float]], rows: int, *,
    samples: int, confidence: float, seed: int, max_rows: int | None = None,
    full: dict[str, float] | None = None,
) -> dict[str, list[float]]:  # fmt: skip
    """{metric: [low, high]} from `samples` resamples of row positions; metrics_of(positions)
    computes every metric on those rows. A resample where a metric is undefined (one class
    drawn) does not count for it. `full` holds the metrics on every row; it is needed when
    `rows` exceeds `max_rows` (the centre the scaled percentiles are measured from)."""
    if samples == 0 or rows < 2:
        return {}
    drawn_rows = min(rows, max_rows or rows)
    if drawn_rows < rows and full is None:
        raise ValueError("resamples smaller than the test split need the full split's metrics")
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[float]] = {}
    for _ in range(samples):
        for name, value in metrics_of(rng.integers(0, rows, drawn_rows)).items():
            drawn.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    intervals = {
        name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
        for name, values in drawn.items()
        if len(values) >= samples / 2  # rarely defined: no honest interval
    }
    if drawn_rows == rows:
        return intervals
    scale = np.sqrt(drawn_rows / rows)
    return {
        name: [float(full[name] + scale * (bound - full[name])) for bound in bounds]
        for name, bounds in intervals.items()
        if name in full and np.isfinite(full[name])
    }
