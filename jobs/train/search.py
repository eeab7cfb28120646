"""The hyperparameter search: one Ray Tune run per model family, sharing a time budget.

Trials get their data through the object store, actors are reused, results arrive every
few rounds and the model is checkpointed once, at the trial's end: the levers that keep
Tune's overhead small (bench/bench_tune_overhead.py measures it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import resources
from mlbatch_jobs.train.data import SearchData
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import TuningMetric, sort_best_first
from mlbatch_jobs.train.progress import Progress
from mlbatch_jobs.train.spaces import check_overrides, search_space
from mlbatch_jobs.train.trial import ROUNDS, TrialSettings, run_trial
from mlbatch_jobs.train.tune_storage import TuneStorage

ASHA_REDUCTION = 3  # keep the best third at each rung
# A baseline needs fewer trials to show where it stands: half a share of the budget.
BUDGET_WEIGHT = {"linear": 0.5}
BACKSTOP_S = 30.0  # Tune ends every trial this long after the budget, whatever they do


@dataclass(frozen=True)
class SearchResult:
    metric: TuningMetric
    trials: list[dict]  # every trial: family, config, status, scores, curve, where it ran
    leaderboard: list[dict]  # the best completed trial of each family, best first
    checkpoints: dict[str, tune.Checkpoint]  # family -> its best trial's saved model
    wall_s: float

    @property
    def best(self) -> dict:
        return self.leaderboard[0]


def search(
    data: SearchData, spec: TrainSpec, metric: TuningMetric, *, storage: TuneStorage
) -> SearchResult:
    """Search every family in spec.models on a running Ray; each gets its weighted share of
    what is left of the budget, so time a family does not use goes to the next."""
    cluster = resources.cluster_resources()
    resources.check_gpu_requirement(spec, cluster)  # before any trial starts
    for family in spec.models:
        check_overrides(family, data.main.task, spec.search_spaces.get(family, {}))
    started = time.time()
    trials: list[dict] = []
    best: tuple[float, str] | None = None
    results = {}
    for position, family in enumerate(spec.models):
        remaining = spec.time_budget_s - (time.time() - started)
        weights = [BUDGET_WEIGHT.get(name, 1.0) for name in spec.models[position:]]
        share = max(remaining, 1.0) * weights[0] / sum(weights)
        device = None if spec.resources.gpu == "never" else resources.gpu_device(family, cluster)
        plan = resources.plan_trials(load_family(family), spec, cluster, gpu_device=device)
        print(
            f"[train] searching {family}: {spec.num_samples} trials, {share:.0f}s budget, "
            f"{plan.concurrency} at a time with {plan.cpus} CPU {plan.gpus:g} GPU ({plan.device})"
        )
        grid = search_family(family, data, spec, metric, budget_s=share, plan=plan,
                             storage=storage, best=best)  # fmt: skip
        results[family] = grid
        own = [trial_record(family, result, metric.name) for result in grid]
        trials += own
        done = sort_best_first([t for t in own if t["status"] == "ok"], metric.name, metric.mode)
        if done and (best is None or metric.better(done[0][metric.name], best[0])):
            best = (done[0][metric.name], family)
    leaderboard, checkpoints = rank(results, trials, metric)
    if not leaderboard:
        errors = {t.get("error") for t in trials} - {None}
        why = "; ".join(sorted(errors)) or "the time budget ended them all"
        raise RuntimeError(f"no trial completed: {why}")
    return SearchResult(metric, trials, leaderboard, checkpoints, round(time.time() - started, 3))


def search_family(
    family: str, data: SearchData, spec: TrainSpec, metric: TuningMetric, *,
    budget_s: float, plan: resources.TrialResources, storage: TuneStorage,
    best: tuple[float, str] | None = None, searcher: Searcher | None = None,
) -> tune.ResultGrid:  # fmt: skip
    """One Tune run over a family's space; every trial's result, failed ones included.
    searcher: the spec's (searcher_for) unless given, as a benchmark replaying configs does."""
    # Tune stops every trial still running when its budget ends, and their results are
    # lost. So new trials start only until two margins before the end, running ones stop
    # boosting one margin before it, which leaves them time to score and report. Tune's
    # own limit is only a backstop, well after the end: a trial whose worker started late
    # (a busy machine takes seconds to import the libraries) still reports what it reached.
    margin = min(10.0, max(2.0, 0.1 * budget_s))
    backstop = max(margin, BACKSTOP_S)
    end = time.time() + budget_s
    settings = TrialSettings(
        family=family, metric=metric, resources=plan, seed=spec.seed, deadline=end - margin,
        max_rounds=spec.max_rounds, early_stopping_rounds=spec.early_stopping_rounds,
        report_every=spec.report_every,
    )  # fmt: skip
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data, settings=settings), plan.ray_resources
    )
    limiter = LaunchUntil(
        searcher or searcher_for(spec), max_concurrent=plan.concurrency, cutoff=end - 2 * margin
    )
    uses_rounds = load_family(family).uses_rounds
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(family, data.main.task, spec.search_spaces.get(family)),
        tune_config=tune.TuneConfig(
            metric=metric.name, mode=metric.mode, num_samples=spec.num_samples,
            time_budget_s=budget_s + backstop, reuse_actors=True, search_alg=limiter,
            scheduler=asha(spec) if uses_rounds and spec.scheduler == "asha" else FIFOScheduler(),
        ),
        run_config=tune.RunConfig(
            name=family, storage_path=storage.path, storage_filesystem=storage.filesystem,
            verbose=0, log_to_file=False,
            callbacks=[Progress(family=family, total=spec.num_samples, metric=metric,
                                budget_end=end, best=best)],
            # Trials write no files of their own: nothing to sync but the final checkpoint.
            sync_config=tune.SyncConfig(sync_artifacts=False),
        ),
    )  # fmt: skip
    return tuner.fit()


def searcher_for(spec: TrainSpec) -> Searcher:
    """Optuna's TPE (a few random trials first), or plain seeded random sampling."""
    if spec.search == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    else:
        startup = min(10, max(2, spec.num_samples // 3))
        sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)
    return OptunaSearch(sampler=sampler)


def asha(spec: TrainSpec) -> ASHAScheduler:
    """Stops a trial at a rung (every few rounds) when it is not in the best third there."""
    grace = min(3 * spec.report_every, spec.max_rounds)
    # Past max_t ASHA stops a trial; a trial that reaches max_rounds must still report its
    # final scores (and checkpoint), so max_t lies one round beyond.
    return ASHAScheduler(
        time_attr=ROUNDS, max_t=spec.max_rounds + 1, grace_period=grace,
        reduction_factor=ASHA_REDUCTION,
    )  # fmt: skip


class LaunchUntil(ConcurrencyLimiter):
    """Runs at most max_concurrent trials at once, and starts none after the cutoff time,
    except a family's first: every listed family gets a trial (which, past its deadline,
    trains one round and reports)."""

    def __init__(self, searcher: Searcher, *, max_concurrent: int, cutoff: float):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.cutoff = cutoff
        self.started = 0

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.started and time.time() >= self.cutoff:
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self.started += 1
        return config


def trial_record(family: str, result, metric: str) -> dict:
    """A trial as trials.parquet keeps it."""
    metrics = result.metrics or {}
    if result.error is not None:
        status = "failed"
    elif metrics.get("final"):
        status = "ok"
    else:  # ended before its final report: by ASHA (or by the end of the time budget)
        status = "early_stopped" if metric in metrics else "stopped"
    record = {
        "family": family, "trial_id": metrics.get("trial_id"), "status": status,
        "config": result.config, metric: metrics.get(metric),
        "seconds": round(metrics.get("time_total_s", 0.0), 3),
        **{key: metrics.get(key) for key in (
            "valid", "cv_scores", ROUNDS, "best_iteration", "fit_s", "rounds_per_s", "node",
            "device", "cpus", "gpus", "curve_rounds", "curve_train", "curve_valid",
        )},
    }  # fmt: skip
    if result.error is not None:
        record["error"] = f"{type(result.error).__name__}: {result.error}".splitlines()[0]
    return record


def rank(results: dict, trials: list[dict], metric: TuningMetric):
    """The leaderboard (each family's best completed trial) and those trials' checkpoints."""
    rows, checkpoints = [], {}
    for family, grid in results.items():
        own = [t for t in trials if t["family"] == family]
        completed = sort_best_first(
            [t for t in own if t["status"] == "ok"], metric.name, metric.mode
        )
        if not completed:
            continue
        best = completed[0]
        rows.append({
            **{k: v for k, v in best.items() if not k.startswith("curve_")},
            "trials": len(own), "completed": len(completed),
            "early_stopped": sum(t["status"] == "early_stopped" for t in own),
        })  # fmt: skip
        for result in grid:
            if (result.metrics or {}).get("trial_id") == best["trial_id"]:
                checkpoints[family] = result.checkpoint
    return sort_best_first(rows, metric.name, metric.mode), checkpoints
