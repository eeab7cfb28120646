"""When each family's share of the time budget begins: at its first trial's start.

A family's trials run in Ray workers that Tune starts for it, and a worker takes seconds
to start and import its library (12-15 s was measured on a loaded 2-core node). A clock
started when the family's Tuner starts spends that on nothing: a 10 s share passed before
the first trial began, and it trained one round (docs/train.md, the deliveries table). So
the share starts when the first trial of the family asks for its deadline; the search
then charges a family only for the time after that, and reports the start-up apart.

One small actor holds the clock, so trials on every node of a cluster see the same end.
"""

from __future__ import annotations

import time

import ray


@ray.remote(num_cpus=0)
class BudgetClock:
    def __init__(self):
        self.windows: dict[str, tuple[float, float]] = {}  # family -> (began, ends)

    def begin(self, family: str, share_s: float) -> float:
        """The family's end (epoch seconds), its share counted from the first call."""
        if family not in self.windows:
            now = time.time()
            self.windows[family] = (now, now + share_s)
        return self.windows[family][1]

    def window(self, family: str) -> tuple[float, float] | None:
        """(began, ends), or None while no trial of the family has started."""
        return self.windows.get(family)


def start_clock():
    """A clock for one search; its worker starts while the first family's trials do."""
    return BudgetClock.remote()
