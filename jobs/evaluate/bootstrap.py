"""Confidence intervals of the test metrics by the bootstrap: resample the test rows with
replacement, recompute every metric, take the percentiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_intervals(
    metrics_of: Callable[[np.ndarray], dict[str, float]], rows: int, *,
    samples: int, confidence: float, seed: int,
) -> dict[str, list[float]]:  # fmt: skip
    """{metric: [low, high]} from `samples` resamples of row positions; metrics_of(positions)
    computes every metric on those rows. A resample where a metric is undefined (one class
    drawn) does not count for it."""
    if samples == 0 or rows < 2:
        return {}
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[float]] = {}
    for _ in range(samples):
        for name, value in metrics_of(rng.integers(0, rows, rows)).items():
            drawn.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    return {
        name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
        for name, values in drawn.items()
        if len(values) >= samples / 2  # rarely defined: no honest interval
    }
