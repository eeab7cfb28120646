"""The hyperparameter search: one Ray Tune run per model family, sharing a time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from mlbatch.spec import TrainSpec
from mlbatch.tasks import TUNING_METRIC
from mlbatch_jobs.train.data import TrainingData
from mlbatch_jobs.train.models import FAMILIES
from mlbatch_jobs.train.scoring import sort_best_first, tuning_score

# Small spaces over what matters most for boosted trees; both families take the same
# scikit-learn style names where they share a meaning.
SEARCH_SPACES = {
    "xgboost": {
        "learning_rate": tune.loguniform(0.02, 0.3),
        "max_depth": tune.randint(3, 11),
        "min_child_weight": tune.loguniform(0.5, 50.0),
        "subsample": tune.uniform(0.5, 1.0),
        "colsample_bytree": tune.uniform(0.5, 1.0),
        "reg_lambda": tune.loguniform(1e-3, 10.0),
        "reg_alpha": tune.loguniform(1e-3, 10.0),
    },
    "lightgbm": {
        "learning_rate": tune.loguniform(0.02, 0.3),
        "num_leaves": tune.lograndint(8, 256),
        "min_child_samples": tune.lograndint(5, 200),
        "min_child_weight": tune.loguniform(1e-3, 10.0),
        "subsample": tune.uniform(0.5, 1.0),
        "colsample_bytree": tune.uniform(0.5, 1.0),
        "reg_lambda": tune.loguniform(1e-3, 10.0),
        "reg_alpha": tune.loguniform(1e-3, 10.0),
    },
}


@dataclass(frozen=True)
class SearchResult:
    metric: str
    mode: str  # "max" or "min": which end of the metric is better
    trials: list[dict]  # every trial: family, config, status (ok, failed, stopped), metric, ...
    leaderboard: list[dict]  # the best trial of each family, best first
    wall_s: float

    @property
    def best(self) -> dict:
        return self.leaderboard[0]


def search(data: TrainingData, spec: TrainSpec, *, storage: Path) -> SearchResult:
    """Search every family in spec.models on a running Ray; each gets an equal share of
    what is left of the budget, so time a family does not use goes to the next."""
    metric, mode = TUNING_METRIC[data.task]
    started = time.time()
    trials: list[dict] = []
    for position, family in enumerate(spec.models):
        remaining = spec.time_budget_s - (time.time() - started)
        share = max(remaining, 1.0) / (len(spec.models) - position)
        print(f"[train] searching {family}: {spec.num_samples} trials, {share:.0f}s budget")
        trials += search_family(family, data, spec, budget_s=share, storage=storage)
    finished = {t["family"] for t in trials if t["status"] == "ok"}
    leaderboard = sort_best_first(
        [best_trial(family, trials, metric, mode) for family in spec.models if family in finished],
        metric, mode,
    )  # fmt: skip
    if not leaderboard:
        errors = {t.get("error") for t in trials} - {None}
        why = "; ".join(sorted(errors)) or "the time budget ended them all"
        raise RuntimeError(f"no trial completed: {why}")
    return SearchResult(metric, mode, trials, leaderboard, round(time.time() - started, 3))


def search_family(
    family: str, data: TrainingData, spec: TrainSpec, *, budget_s: float, storage: Path
) -> list[dict]:
    """One Tune run over a family's space; every trial's outcome, failed ones included."""
    metric, mode = TUNING_METRIC[data.task]
    # Tune stops every trial still running when the budget ends, and their results are
    # lost. So new trials start only until two margins before the end, and running ones
    # stop boosting one margin before it, which leaves them time to score and report.
    margin = min(10.0, max(1.0, 0.1 * budget_s))
    end = time.time() + budget_s
    trainable = tune.with_parameters(
        run_trial, data=data, family=family, seed=spec.seed, deadline=end - margin
    )
    searcher = LaunchUntil(
        OptunaSearch(sampler=optuna.samplers.TPESampler(seed=spec.seed)),
        max_concurrent=spec.max_concurrent_trials, cutoff=end - 2 * margin,
    )  # fmt: skip
    tuner = tune.Tuner(
        trainable,
        param_space=SEARCH_SPACES[family],
        tune_config=tune.TuneConfig(
            metric=metric, mode=mode, num_samples=spec.num_samples, time_budget_s=budget_s,
            reuse_actors=True, search_alg=searcher,  # the searcher limits concurrency
        ),
        run_config=tune.RunConfig(storage_path=str(storage), name=family, verbose=1),
    )  # fmt: skip
    return [trial_record(family, result, metric) for result in tuner.fit()]


class LaunchUntil(ConcurrencyLimiter):
    """Runs at most max_concurrent trials at once, and starts none after the cutoff time."""

    def __init__(self, searcher: Searcher, *, max_concurrent: int, cutoff: float):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.cutoff = cutoff

    def suggest(self, trial_id: str) -> dict | str | None:
        if time.time() >= self.cutoff:
            return Searcher.FINISHED
        return super().suggest(trial_id)


def run_trial(config: dict, *, data: TrainingData, family: str, seed: int, deadline: float) -> None:
    """One trial: fit on one thread (trials run side by side), score on the validation split."""
    model = FAMILIES[family]
    fit = model.fit(config, data, threads=1, seed=seed, deadline=deadline)
    predictions = model.predict(fit, data.x_valid)
    score = tuning_score(data.task, data.y_valid, predictions, data.num_classes)
    metric, _ = TUNING_METRIC[data.task]
    tune.report({metric: score, "best_iteration": fit.best_iteration, "rounds": fit.rounds})


def trial_record(family: str, result, metric: str) -> dict:
    """A trial as trials.json keeps it."""
    metrics = result.metrics or {}
    if result.error is not None:
        status = "failed"
    else:  # Tune ends trials still running at the time budget without a result
        status = "ok" if metric in metrics else "stopped"
    record = {
        "family": family,
        "config": result.config,
        "status": status,
        metric: metrics.get(metric),
        "best_iteration": metrics.get("best_iteration"),
        "rounds": metrics.get("rounds"),
        "seconds": round(metrics.get("time_total_s", 0.0), 3),
    }
    if result.error is not None:
        record["error"] = f"{type(result.error).__name__}: {result.error}".splitlines()[0]
    return record


def best_trial(family: str, trials: list[dict], metric: str, mode: str) -> dict:
    """The family's best completed trial, with how many of its trials ran and completed."""
    own = [t for t in trials if t["family"] == family]
    completed = [t for t in own if t["status"] == "ok"]
    best = sort_best_first(completed, metric, mode)[0]
    return {**best, "trials": len(own), "completed": len(completed)}
