"""The final model chosen out of fold (train.cv: finalists, the default where features
wrote CV folds).

The search ranks its trials on one validation split. On a small table the best of hundreds
of scores on a few hundred rows is mostly the luckiest (the winner's curse: on caravan the
chosen trials scored 0.774 on validation and 0.731 on test, and a default that scored 0.729
on validation was the best on test). So the search's finalists, each family's best few
trials and its portfolio's defaults, are fitted again on features' other folds, and the
final model (the best single one, or the ensemble's members and weights) is chosen on
those folds' validation rows: rows that chose nothing so far, four times the rows of one
split. The search itself stays one fit per trial and keeps its trial count (scoring every
trial on every fold, train.cv: trials, left it a fifth of them and lost at 60 s).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from mlbatch_jobs.train.data import SearchData
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.final_model import Candidate
from mlbatch_jobs.train.models import FitOptions
from mlbatch_jobs.train.target_transform import inverse
from mlbatch_jobs.train.trial import score_fit


@dataclass
class Rescored:
    """The finalists that were scored on every other fold, best first, with predictions on
    those folds' validation rows (in fold order), and what the others did not get."""

    candidates: list[Candidate]
    targets: np.ndarray  # the folds' validation targets, on the target's own scale
    record: dict = field(default_factory=dict)


def order(candidates: list[Candidate], leaderboard: list[dict]) -> list[Candidate]:
    """The order to rescore in while time lasts: each family's best trial (families as the
    search ranked them), then the portfolio's defaults, then the rest of each family's best
    few; within a tier, as the search ranked them (candidates come best first)."""
    families = [row["family"] for row in leaderboard]
    best = {row["trial_id"] for row in leaderboard}

    def tier(candidate: Candidate) -> tuple[int, int]:
        trial = candidate.trial
        rank = families.index(trial["family"]) if trial["family"] in families else len(families)
        if trial["trial_id"] in best:
            return 0, rank
        return (1 if trial.get("origin") == "portfolio" else 2), 0

    return sorted(candidates, key=tier)  # stable: the search's order within a tier


def rescore(
    candidates: list[Candidate], data: SearchData, options: FitOptions, *, threads: int,
    deadline: float,
) -> Rescored:  # fmt: skip
    """Fit each candidate's configuration on every fold but the main split, `threads` fits
    at a time on one thread each, in the given order, until the deadline. A candidate
    counts only when all its folds were fitted in full: a fit cut by the deadline, or not
    started since it would not end before it, leaves it out."""
    started = time.time()
    folds, metric = data.folds, options.metric
    targets = np.concatenate([inverse(f.target_transform, f.y_valid) for f in folds])
    options = replace(options, threads=1, deadline=deadline, on_rounds=None)
    jobs = [(c, n) for c in candidates for n in range(len(folds))]

    def fit(job: tuple[Candidate, int]) -> tuple[float, np.ndarray] | None:
        candidate, n = job
        trial, fold = candidate.trial, folds[n]
        # A fold trains on about the rows the main split did, on one thread as trials do.
        estimate = (trial.get("fit_s") or 0.0) * (trial.get("cpus") or 1)
        if time.time() + estimate > deadline:
            return None
        family = load_family(trial["family"])
        fit = family.fit(trial["config"], fold, options)
        if time.time() >= deadline:  # cut short: not the configuration's real score
            return None
        return score_fit(metric, family, fit, fold)

    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        done = list(pool.map(fit, jobs))
    rescored, left_out = [], []
    for i, candidate in enumerate(candidates):
        scored = done[i * len(folds):(i + 1) * len(folds)]
        if any(s is None for s in scored):
            left_out.append(candidate.trial["trial_id"])
            continue
        predictions = np.concatenate([p for _, p in scored])
        score = metric.score(targets, predictions, data.main.num_classes)
        trial = {**candidate.trial, "finalist_score": score,
                 "finalist_fold_scores": [s for s, _ in scored]}  # fmt: skip
        rescored.append(Candidate(trial, candidate.folder, predictions))
    rescored.sort(key=lambda c: c.trial["finalist_score"], reverse=metric.mode == "max")
    record = {
        "folds": len(folds), "rows": len(targets), "seconds": round(time.time() - started, 3),
        "scored": [{
            "trial_id": c.trial["trial_id"], "family": c.trial["family"],
            "origin": c.trial.get("origin"), "valid": c.trial["valid"],
            "score": c.trial["finalist_score"],
        } for c in rescored],
        "left_out": left_out,  # the deadline came first
    }  # fmt: skip
    return Rescored(rescored, targets, record)
