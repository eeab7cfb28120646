"""A boosted fit's tuning metric every report_every rounds and at its last round, on the
training sample and the valid split: the curve, and the value the search is told (ASHA).
Only fits the search follows (options.on_rounds) score anything: a CV fold or a refit
needs no curve.

Where early stopping follows the metric's native twin (log loss, RMSE, MAE, R² through
RMSE) the library has logged it every round and the value is read from its log. AUC and
accuracy stop on log loss; they are scored exactly from the booster's current predictions
(both libraries keep them for their evaluation sets), at those rounds only: a native AUC
sorts the valid split every round, a tenth of a round's cost on a million rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.models import Curve, FitOptions

# (training sample's, valid split's) predictions as of the current round
Predictions = Callable[[], tuple[np.ndarray, np.ndarray]]


class RoundScores:
    def __init__(self, options: FitOptions, data: TrainingData, library: str):
        self.options, self.metric = options, options.metric
        self.native = options.metric.native(library)
        self.y_sample = data.train_sample()[1]
        self.y_valid, self.num_classes = data.y_valid, data.num_classes
        self.curve = Curve()

    @property
    def wanted(self) -> bool:
        return self.options.on_rounds is not None

    def due(self, rounds: int) -> bool:
        return self.wanted and rounds % self.options.report_every == 0

    def record(self, rounds: int, log: dict, predictions: Predictions) -> float:
        """The metric on valid at this round (added to the curve with the sample's).
        log: the library's per-round log, {"train" or "valid": {metric: [values]}}."""
        if self.native is not None:
            sample = self.metric.from_native(float(log["train"][self.native][-1]), self.y_sample)
            valid = self.metric.from_native(float(log["valid"][self.native][-1]), self.y_valid)
        else:
            sample_predicted, valid_predicted = predictions()
            sample = self._score(self.y_sample, sample_predicted)
            valid = self._score(self.y_valid, valid_predicted)
        self.curve.rounds.append(rounds)
        self.curve.train.append(sample)
        self.curve.valid.append(valid)
        return valid

    def report(self, rounds: int, log: dict, predictions: Predictions) -> None:
        """At a report round: record it, and tell the search (which may end the trial)."""
        if self.due(rounds):
            self.options.on_rounds(rounds, self.record(rounds, log, predictions))

    def finish(self, rounds: int, log: dict, predictions: Predictions) -> Curve:
        """The curve, ending at the last round trained."""
        if self.wanted and (not self.curve.rounds or self.curve.rounds[-1] != rounds):
            self.record(rounds, log, predictions)
        return self.curve

    def _score(self, y: np.ndarray, predicted: np.ndarray) -> float:
        try:
            return self.metric.score(y, predicted, self.num_classes)
        except ValueError:  # e.g. AUC of a sample holding one class only
            return float("nan")
