"""A greedy weighted ensemble of the search's best trials (Caruana et al., 2004, "Ensemble
selection from libraries of models"), as AutoGluon and FLAML build theirs.

Forward selection with replacement on validation predictions: start empty, and at each
step add the candidate (again, if it helps most) whose addition gives the best score of
the averaged predictions; the weights are how often each was picked. The first step picks
the best single candidate and the ensemble kept is the best seen over all steps, so on the
rows it was chosen on it is never worse than its best member. With CV the predictions are
every fold's validation rows (out of fold), so the weights rest on more rows than one split.

Saved without pickles: `ensemble.json` (members, their files and weights) next to each
member in its own native format; mlbatch.scoring loads it like any model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENSEMBLE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
STEPS = 25  # selection steps: weights in 1/25ths at most; AutoGluon uses 25 too
MAX_SELECTION_ROWS = 50_000  # score candidates on a fixed sample of rows: steps stay cheap


@dataclass(frozen=True)
class Selection:
    weights: np.ndarray  # one per candidate, summing to 1 (0 for the unpicked)
    score: float  # the ensemble's, on the selection rows
    single: float  # the best single candidate's, on the same rows
    steps: int  # steps taken until the kept ensemble

    @property
    def members(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.weights)]


def select(
    predictions: list[np.ndarray], score: Callable[[np.ndarray], float], *, higher_is_better: bool,
    steps: int = STEPS,
) -> Selection:  # fmt: skip
    """Caruana's forward selection with replacement. predictions: each candidate's, on the
    same rows; score: the metric of a prediction on those rows."""
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    counts = np.zeros(len(predictions))
    total = np.zeros_like(predictions[0], dtype="float64")
    best_counts, best_score, single = counts.copy(), None, None
    best_step = 0
    for step in range(1, steps + 1):
        # Ties go to the earlier candidate: the caller lists them best first.
        scored = [score((total + p) / step) for p in predictions]
        pick = 0
        for i, value in enumerate(scored):
            if better(value, scored[pick]):
                pick = i
        counts[pick] += 1
        total = total + predictions[pick]
        if single is None:
            single = scored[pick]
        if best_score is None or better(scored[pick], best_score):
            best_counts, best_score, best_step = counts.copy(), scored[pick], step
    return Selection(best_counts / best_counts.sum(), float(best_score), float(single), best_step)


def selection_rows(count: int, seed: int = 0) -> np.ndarray:
    """The rows selection scores on: all, or a fixed sample when there are many."""
    if count <= MAX_SELECTION_ROWS:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, MAX_SELECTION_ROWS, replace=False))


def blend(predictions: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted average of the members' predictions (probabilities or values)."""
    return np.sum([w * np.asarray(p, dtype="float64") for w, p in zip(weights, predictions,
                                                                      strict=True)], axis=0)


def save_ensemble(model_dir: Path, members: list[dict]) -> Path:
    """ensemble.json and each member's model file under members/<n>-<family>/.

    members: {"family", "path" (the member's native model file), "weight", and anything
    else to record (trial_id, config, rounds)}.
    """
    entries = []
    for n, member in enumerate(members):
        folder = Path(MEMBERS_DIR) / f"{n}-{member['family']}"
        (model_dir / folder).mkdir(parents=True, exist_ok=True)
        source = Path(member["path"])
        shutil.copy(source, model_dir / folder / source.name)
        entries.append({
            **{k: v for k, v in member.items() if k != "path"},
            "model_file": (folder / source.name).as_posix(),
        })  # fmt: skip
    path = model_dir / ENSEMBLE_FILE
    path.write_text(json.dumps({"members": entries}, indent=2, default=_plain) + "\n")
    return path


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
