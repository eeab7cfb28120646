"""Progress of the search in the stage log: trials done of total, time left of the budget,
and the best metric so far with its family."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray import tune

from mlbatch_jobs.train.metrics import TuningMetric

PRINT_EVERY_S = 10.0  # between lines while nothing finishes


class Progress(tune.Callback):
    """Prints a line when a trial finishes, and every PRINT_EVERY_S while trials run."""

    def __init__(
        self, *, family: str, total: int | None, metric: TuningMetric,
        ends: Callable[[], float | None], best: tuple[float, str] | None,
    ):  # fmt: skip
        self.family, self.total, self.metric, self.ends = family, total, metric, ends
        self.best = best  # (value, family) over the families searched before this one
        self.finished = 0
        self.printed = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get("final"):
            value = result[self.metric.name]
            if self.best is None or self.metric.better(value, self.best[0]):
                self.best = (value, self.family)
        if time.time() - self.printed >= PRINT_EVERY_S:
            self.show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.finished += 1
        self.show(trials)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.finished += 1
        self.show(trials)

    def show(self, trials) -> None:
        self.printed = time.time()
        running = sum(t.status == "RUNNING" for t in trials)
        end = self.ends()  # None until the family's first trial starts its share
        left = "workers starting" if end is None else (
            f"{max(end - time.time(), 0.0):.0f}s of the budget left")  # fmt: skip
        best = (
            f"best {self.metric.name} {self.best[0]:.5f} ({self.best[1]})" if self.best
            else "no trial finished yet"
        )  # fmt: skip
        print(
            f"[train] progress {self.family}: {self.finished}"
            f"{f'/{self.total}' if self.total else ''} trials done, "
            f"{running} running, {left}; {best}",
            flush=True,
        )
