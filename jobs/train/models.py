"""What every model family shares: how a fit is asked for, and what it hands back.

A family fits on the training split, follows the validation split round by round
(boosting rounds, or trees for a forest), stops early where that is native, can be cut
short by a deadline (the search's time budget), and saves in a format that is never a
pickle: XGBoost JSON, LightGBM text, or skops with a list of trusted types.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.metrics import TuningMetric


@dataclass(frozen=True)
class FitOptions:
    """How to fit, besides the hyperparameters."""

    metric: TuningMetric
    threads: int = 1
    seed: int = 0
    device: str = "cpu"  # "cuda" (XGBoost, LightGBM) or "gpu" (LightGBM's OpenCL build)
    deadline: float | None = None  # epoch seconds: stop adding rounds then, keep the best
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    report_every: int = 10
    # Called every report_every rounds with (rounds so far, validation metric); the search
    # passes Tune's report here, which may end the trial (ASHA) by raising SystemExit.
    on_rounds: Callable[[int, float], None] | None = None
    # Data-parallel workers (parallel_fit.py): whether to stop after this round, the same
    # answer on every worker (one worker stopping alone would hang the others); replaces
    # the deadline check. And the library's own distributed parameters (LightGBM's network).
    stop_after: Callable[[int], bool] | None = None
    library_params: dict = field(default_factory=dict)


@dataclass
class Curve:
    """The tuning metric round by round, on the validation split and a training sample."""

    rounds: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)

    def thinned(self, points: int) -> Curve:
        """At most about `points` evenly spaced rounds, the last one always kept: a curve
        of 10^5 rounds says no more in a plot and weighs on every result Tune logs."""
        step = max(len(self.rounds) // points, 1)
        keep = sorted({*range(0, len(self.rounds), step), len(self.rounds) - 1} - {-1})
        return Curve(
            rounds=[self.rounds[i] for i in keep],
            train=[self.train[i] for i in keep],
            valid=[self.valid[i] for i in keep],
        )


@dataclass(frozen=True)
class Fit:
    model: Any  # predicts as scored: boosters cut at their best round, or a scikit-learn Pipeline
    params: dict  # the library's own parameters, as passed to it
    best_iteration: int  # 0-based round (or tree count - 1) the model ends at
    rounds: int  # rounds trained before early stopping or the deadline ended it
    curve: Curve


class Family(Protocol):
    name: str
    model_file: str
    uses_rounds: bool  # reports per round, so ASHA can stop it early
    gpu: bool  # may run on a GPU

    def default_space(self, task: str) -> dict: ...
    def parameter_names(self, task: str) -> set[str] | None: ...  # None: any name
    def fit(self, config: dict, data: TrainingData, options: FitOptions) -> Fit: ...
    def predict(self, model: Any, x: np.ndarray) -> np.ndarray: ...
    def save(self, fit: Fit, folder: Path) -> Path: ...
    def load(self, path: Path) -> Any: ...
    @property
    def version(self) -> str: ...


def native_feature_names(features: list[str]) -> list[str]:
    """Names both libraries accept (XGBoost rejects [ ] <, LightGBM JSON characters), unique."""
    names: list[str] = []
    for feature in features:
        name = re.sub(r"[^0-9A-Za-z_.-]", "_", feature) or "feature"
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{name}_{n}"
        names.append(candidate)
    return names


def report_due(rounds: int, options: FitOptions) -> bool:
    return options.on_rounds is not None and rounds % options.report_every == 0


def stop_due(rounds: int, options: FitOptions) -> bool:
    """Stop boosting after this round: the deadline passed (or the workers agree it did)."""
    if options.stop_after is not None:
        return options.stop_after(rounds)
    return bool(options.deadline) and time.time() >= options.deadline
