"""The hyperparameter search: one Ray Tune run per model family, sharing a time budget.

Trials get their data through the object store, actors are reused, results arrive every
few rounds and the model is checkpointed once, at the trial's end: the levers that keep
Tune's overhead small (bench/bench_tune_overhead.py measures it).

Each family starts from its portfolio of strong defaults (portfolio.py) and then searches
until its share of the time budget ends: the budget, not a trial count, ends the search.
A share counts from the family's first trial's start (budget_clock.py): the seconds Ray
takes to start its workers are reported, not charged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from mlbatch.spec import TrainSpec
from mlbatch_jobs.train import data_parallel, resources
from mlbatch_jobs.train.budget_clock import start_clock
from mlbatch_jobs.train.data import SearchData, StoredSplits
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.metrics import TuningMetric, sort_best_first
from mlbatch_jobs.train.parallel_trial import TRIAL_RESOURCES, ParallelSettings, run_parallel_trial
from mlbatch_jobs.train.portfolio import portfolio
from mlbatch_jobs.train.progress import Progress
from mlbatch_jobs.train.spaces import check_overrides, samples_anything, search_space
from mlbatch_jobs.train.trial import ROUNDS, TrialSettings, run_trial
from mlbatch_jobs.train.tune_storage import TuneStorage

ASHA_REDUCTION = 3  # keep the best third at each rung
# ASHA's first rung, as a share of max_rounds: a learning rate of 0.02 is far behind one
# of 0.2 after 30 rounds and often ahead after 300, so an early first rung kills exactly
# the slow, careful configurations that win on larger tables.
ASHA_GRACE_FRACTION = 0.2
# A baseline needs few trials to show where it stands: a capped share of the budget and a
# capped number of trials (its space is one or two numbers), so it never eats the time
# the boosters would use. What it leaves unused goes to the next family.
BUDGET_WEIGHT = {"linear": 0.5}
MAX_BUDGET_SHARE = {"linear": 0.1}  # of the whole budget, but never under MIN_CAPPED_S:
MIN_CAPPED_S = 10.0  # a busy node takes seconds to start a worker and import the library
MAX_TRIALS = {"linear": 4}
# ... and one after another in one worker: its fits take a second, a second worker takes
# longer than that to start on a busy node, and its start would be charged to the share.
SERIAL_FAMILIES = frozenset(MAX_TRIALS)
# A family's share is never smaller: a booster needs a few seconds to train more than a
# round or two, and a one-round model must not be what a short budget ships.
MIN_SHARE_S = 5.0
TOP_TRIALS = 3  # per family, the completed trials kept as ensemble candidates
# Tune ends every trial this long after the family's share would end had its first trial
# started STARTUP_WAIT_S after the Tuner, whatever they do: a backstop, never the clock.
BACKSTOP_S = 30.0
STARTUP_WAIT_S = 120.0
# A data-parallel trial starts a Ray Train worker group and Ray Data's executors too, and
# its workers read their shards before its clock starts: 2-3 minutes on a busy 2-core node.
PARALLEL_STARTUP_WAIT_S = 300.0
# ... and a later trial's start-up is charged to the share (its clock runs): none starts
# this long before the share ends, on top of the two margins.
PARALLEL_LAUNCH_LEAD_S = 60.0


@dataclass(frozen=True)
class SearchResult:
    metric: TuningMetric
    trials: list[dict]  # every trial: family, config, status, scores, curve, where it ran
    leaderboard: list[dict]  # the best completed trial of each family, best first
    checkpoints: dict[str, tune.Checkpoint]  # family -> its best trial's saved model
    wall_s: float
    # trial_id -> saved model, for each family's TOP_TRIALS best trials scored on the same
    # folds as the best one (the ensemble's candidates)
    candidates: dict[str, tune.Checkpoint] = field(default_factory=dict)
    # trial_id -> saved model, for each family's completed portfolio trials (finalists.py)
    portfolio: dict[str, tune.Checkpoint] = field(default_factory=dict)
    # family -> seconds from its Tuner's start to its first trial's (not charged to budget)
    startup_s: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> dict:
        return self.leaderboard[0]


def search(
    data: SearchData, spec: TrainSpec, metric: TuningMetric, *, storage: TuneStorage,
    budget_s: float | None = None, splits: StoredSplits | None = None,
) -> SearchResult:  # fmt: skip
    """Search every family in spec.models on a running Ray; each gets its weighted share of
    what is left of the budget (budget_s, default the spec's), so time a family does not
    use goes to the next. The search's wall time is the budget plus the families' start-up
    (SearchResult.startup_s). splits: where the train and valid splits are stored, given
    when XGBoost and LightGBM train data-parallel (data_parallel.py)."""
    cluster = resources.cluster_resources()
    resources.check_gpu_requirement(spec, cluster)  # before any trial starts
    if splits is not None and data.cv:
        raise ValueError("data-parallel trials score on the train/valid split only: no folds")
    parallel_plan = data_parallel.plan(spec, cluster) if splits is not None else None
    for family in spec.models:
        check_overrides(family, data.main.task, spec.search_spaces.get(family, {}))
    started = time.time()
    budget_s = spec.time_budget_s if budget_s is None else budget_s
    clock = start_clock()
    trials: list[dict] = []
    best: tuple[float, str] | None = None
    results, startup = {}, {}
    spent = 0.0  # of the budget: each family's time from its first trial's start
    for position, family in enumerate(spec.models):
        remaining = budget_s - spent
        weights = [BUDGET_WEIGHT.get(name, 1.0) for name in spec.models[position:]]
        share = max(remaining * weights[0] / sum(weights), MIN_SHARE_S)
        if position < len(spec.models) - 1:  # the last family has no one to leave time to
            share = min(share, max(MAX_BUDGET_SHARE.get(family, 1.0) * budget_s, MIN_CAPPED_S))
        device = None if spec.resources.gpu == "never" else resources.gpu_device(family, cluster)
        plan = resources.plan_trials(load_family(family), spec, cluster, gpu_device=device)
        if family in SERIAL_FAMILIES:
            plan = replace(plan, concurrency=1)
        parallel = None
        if parallel_plan is not None and family in data_parallel.PARALLEL_FAMILIES:
            cpus = parallel_plan.cpus_per_worker
            parallel = ParallelSettings(splits, parallel_plan.workers, cpus, storage)
            plan = resources.TrialResources(
                cpus=cpus, gpus=0.0, device="cpu", concurrency=parallel_plan.concurrency
            )
        limit = trial_limit(family, spec)
        workers = f"{parallel.workers} data-parallel workers of " if parallel else ""
        print(
            f"[train] searching {family}: {'until the budget ends' if limit < 0 else limit} "
            f"trials, {share:.0f}s budget, {plan.concurrency} at a time with "
            f"{workers}{plan.cpus} CPU {plan.gpus:g} GPU ({plan.device})"
        )
        family_started = time.time()
        grid = search_family(
            family, data, spec, metric, budget_s=share, plan=plan, storage=storage, best=best,
            clock=clock, parallel=parallel,
        )  # fmt: skip
        window = ray.get(clock.window.remote(family))
        began = window[0] if window else time.time()
        spent += time.time() - began
        startup[family] = round(max(began - family_started, 0.0), 3)
        print(f"[train] {family}: {startup[family]:.1f}s to start its first trial (not charged "
              f"to the budget); {spent:.0f}s of the {budget_s:.0f}s budget used")  # fmt: skip
        results[family] = grid
        points = portfolio_points(family, data, spec)
        own = [trial_record(family, result, metric.name, points) for result in grid]
        trials += own
        done = sort_best_first([t for t in own if t["status"] == "ok"], metric.name, metric.mode)
        if done and (best is None or metric.better(done[0][metric.name], best[0])):
            best = (done[0][metric.name], family)
    leaderboard, checkpoints, candidates = rank(results, trials, metric)
    defaults = portfolio_checkpoints(results, trials)
    if not leaderboard:
        errors = {t.get("error") for t in trials} - {None}
        why = "; ".join(sorted(errors)) or "the time budget ended them all"
        raise RuntimeError(f"no trial completed: {why}")
    return SearchResult(metric, trials, leaderboard, checkpoints, round(time.time() - started, 3),
                        candidates, defaults, startup)  # fmt: skip


def trial_limit(family: str, spec: TrainSpec) -> int:
    """Trials the family may start; -1 (Tune's "no limit"): until its budget share ends."""
    limits = [n for n in (spec.num_samples, MAX_TRIALS.get(family)) if n is not None]
    return min(limits) if limits else -1


def search_family(
    family: str, data: SearchData, spec: TrainSpec, metric: TuningMetric, *,
    budget_s: float, plan: resources.TrialResources, storage: TuneStorage,
    best: tuple[float, str] | None = None, searcher: Searcher | None = None, clock=None,
    parallel: ParallelSettings | None = None,
) -> tune.ResultGrid:  # fmt: skip
    """One Tune run over a family's space; every trial's result, failed ones included.
    budget_s counts from the family's first trial's start, on clock (a new one unless
    given). searcher: the spec's (searcher_for) unless given, as a benchmark replaying
    configs does. parallel: train each trial data-parallel (parallel_trial.py)."""
    # Tune stops every trial still running when its budget ends, and their results are
    # lost. So new trials start only until two margins before the end, running ones stop
    # boosting one margin before it, which leaves them time to score and report. Tune's
    # own limit is only a backstop, well after the end.
    margin = min(10.0, max(2.0, 0.1 * budget_s))
    clock = clock or start_clock()
    ends = FamilyEnd(clock, family)
    settings = TrialSettings(
        family=family, metric=metric, resources=plan, seed=spec.seed, clock=clock,
        share_s=budget_s, margin_s=margin, max_rounds=spec.max_rounds,
        early_stopping_rounds=spec.early_stopping_rounds, report_every=spec.report_every,
    )  # fmt: skip
    if parallel is None:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, settings=settings), plan.ray_resources
        )
    else:  # the workers read the data themselves: none goes through the object store
        trainable = tune.with_resources(
            tune.with_parameters(run_parallel_trial, settings=settings, parallel=parallel),
            TRIAL_RESOURCES,
        )  # fmt: skip
    space = search_space(family, data.main.task, spec.search_spaces.get(family))
    fixed = not samples_anything(space)
    if searcher is None:
        points = portfolio_points(family, data, spec)
        searcher = OneConfiguration() if fixed else searcher_for(spec, points=points)
    limiter = LaunchUntil(
        searcher,
        max_concurrent=plan.concurrency, ends=ends,
        lead_s=2 * margin + (PARALLEL_LAUNCH_LEAD_S if parallel else 0.0),
    )  # fmt: skip
    uses_rounds = load_family(family).uses_rounds
    limit = 1 if fixed else trial_limit(family, spec)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=metric.name, mode=metric.mode, num_samples=limit,
            time_budget_s=(PARALLEL_STARTUP_WAIT_S if parallel else STARTUP_WAIT_S)
            + budget_s + max(margin, BACKSTOP_S),
            # A data-parallel trial's Train controller lives with its Tune actor: a fresh
            # actor per trial, so a stopped trial's workers end with it.
            reuse_actors=parallel is None, search_alg=limiter,
            scheduler=asha(spec) if uses_rounds and spec.scheduler == "asha" else FIFOScheduler(),
        ),
        run_config=tune.RunConfig(
            name=family, storage_path=storage.path, storage_filesystem=storage.filesystem,
            verbose=0, log_to_file=False,
            callbacks=[Progress(family=family, total=limit if limit > 0 else None, metric=metric,
                                ends=ends, best=best)],
            # Trials write no files of their own: nothing to sync but the final checkpoint.
            sync_config=tune.SyncConfig(sync_artifacts=False),
        ),
    )  # fmt: skip
    return tuner.fit()


def portfolio_points(family: str, data: SearchData, spec: TrainSpec) -> list[dict]:
    """The portfolio configurations the family's search starts from (none for a space the
    spec fixed entirely)."""
    space = search_space(family, data.main.task, spec.search_spaces.get(family))
    return portfolio(family, space) if samples_anything(space) else []


def searcher_for(spec: TrainSpec, points: list[dict] | None = None) -> Searcher:
    """Optuna's TPE (a few random trials after the portfolio), or seeded random sampling;
    either evaluates `points` (the portfolio) first, in order, and learns from them."""
    points = points or []
    if spec.search == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    else:
        # TPE counts the portfolio's trials among its startup ones: a few random ones after.
        samples = spec.num_samples or 30
        startup = len(points) + min(10, max(2, samples // 3 - len(points)))
        sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)
    return OptunaSearch(sampler=sampler, points_to_evaluate=[dict(p) for p in points] or None)


class OneConfiguration(Searcher):
    """The search of a space with nothing left to sample (the spec fixes every
    hyperparameter): its one configuration, once. Optuna refuses such a space, and more
    trials of it would only repeat the first."""

    def __init__(self):
        super().__init__()
        self.given = False

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | str:
        if self.given:
            return Searcher.FINISHED
        self.given = True
        return {}  # Tune merges in the space's fixed values

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass


def asha(spec: TrainSpec) -> ASHAScheduler:
    """Stops a trial at a rung when it is not in the best third there; the first rung comes
    after ASHA_GRACE_FRACTION of max_rounds (a multiple of report_every)."""
    rung = math.ceil(ASHA_GRACE_FRACTION * spec.max_rounds / spec.report_every)
    grace = min(max(3, rung) * spec.report_every, spec.max_rounds)
    # Past max_t ASHA stops a trial; a trial that reaches max_rounds must still report its
    # final scores (and checkpoint), so max_t lies one round beyond.
    return ASHAScheduler(
        time_attr=ROUNDS, max_t=spec.max_rounds + 1, grace_period=grace,
        reduction_factor=ASHA_REDUCTION,
    )  # fmt: skip


class FamilyEnd:
    """When the family's share ends (epoch seconds), or None before its first trial starts;
    asked of the clock until it is known."""

    def __init__(self, clock, family: str):
        self.clock, self.family = clock, family
        self.end: float | None = None

    def __call__(self) -> float | None:
        if self.end is None:
            window = ray.get(self.clock.window.remote(self.family))
            self.end = window[1] if window else None
        return self.end


class LaunchUntil(ConcurrencyLimiter):
    """Runs at most max_concurrent trials at once, and starts none lead_s before the
    family's share ends (ends(): None while it has not begun), except a family's first:
    every listed family gets a trial (which, past its deadline, trains one round)."""

    def __init__(
        self, searcher: Searcher, *, max_concurrent: int, ends: Callable[[], float | None],
        lead_s: float,
    ):  # fmt: skip
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.ends, self.lead_s = ends, lead_s
        self.started = 0

    def suggest(self, trial_id: str) -> dict | str | None:
        end = self.ends() if self.started else None
        if end is not None and time.time() >= end - self.lead_s:
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self.started += 1
        return config


def trial_record(family: str, result, metric: str, points: list[dict] = ()) -> dict:
    """A trial as trials.parquet keeps it; origin: whether its configuration was one of the
    portfolio's points, or the searcher's."""
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
        "origin": "portfolio" if any(_is_point(result.config, p) for p in points) else "search",
        "seconds": round(metrics.get("time_total_s", 0.0), 3),
        **{key: metrics.get(key) for key in (
            "valid", "cv_scores", ROUNDS, "best_iteration", "fit_s", "rounds_per_s", "allowed_s",
            "node", "device", "cpus", "gpus", "curve_rounds", "curve_train", "curve_valid",
            "workers", "worker_nodes", "worker_rows",
        )},
    }  # fmt: skip
    if result.error is not None:
        record["error"] = f"{type(result.error).__name__}: {result.error}".splitlines()[0]
    return record


def _is_point(config: dict | None, point: dict) -> bool:
    """config is the portfolio point (which names the searched keys only)."""
    def same(a, b) -> bool:
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)):
            return a == b
        return isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)

    return bool(config) and all(k in config and same(config[k], v) for k, v in point.items())


def portfolio_checkpoints(results: dict, trials: list[dict]) -> dict[str, tune.Checkpoint]:
    """trial_id -> saved model, for every completed portfolio trial."""
    wanted = {t["trial_id"] for t in trials if t["origin"] == "portfolio" and t["status"] == "ok"}
    return {
        trial_id: r.checkpoint for grid in results.values() for r in grid
        if (trial_id := (r.metrics or {}).get("trial_id")) in wanted and r.checkpoint is not None
    }  # fmt: skip


def rank(results: dict, trials: list[dict], metric: TuningMetric):
    """The leaderboard (each family's best completed trial), those trials' checkpoints, and
    the ensemble candidates' checkpoints (each family's TOP_TRIALS best)."""
    rows, checkpoints, candidates = [], {}, {}
    for family, grid in results.items():
        own = [t for t in trials if t["family"] == family]
        completed = same_folds(
            sort_best_first([t for t in own if t["status"] == "ok"], metric.name, metric.mode)
        )
        if not completed:
            continue
        best = completed[0]
        rows.append({
            **{k: v for k, v in best.items() if not k.startswith("curve_")},
            "trials": len(own), "completed": len(completed),
            "early_stopped": sum(t["status"] == "early_stopped" for t in own),
        })  # fmt: skip
        saved = {(r.metrics or {}).get("trial_id"): r.checkpoint for r in grid}
        checkpoints[family] = saved.get(best["trial_id"])
        for trial in completed[:TOP_TRIALS]:
            if saved.get(trial["trial_id"]) is not None:
                candidates[trial["trial_id"]] = saved[trial["trial_id"]]
    rows = sort_across_families(rows, metric)
    folds = fold_count(rows[0]) if rows else 0
    kept = {r["trial_id"] for r in trials if r["trial_id"] in candidates and fold_count(r) == folds}
    return rows, checkpoints, {k: v for k, v in candidates.items() if k in kept}


def fold_count(trial: dict) -> int:
    return len(trial.get("cv_scores") or []) or 1


def same_folds(completed: list[dict]) -> list[dict]:
    """The completed trials scored on the most folds, best first.

    A trial that met the budget's end mid-CV has a mean over fewer folds, and a mean over
    other rows is not comparable (one easy fold lifts it): it never outranks a trial
    scored on all of them.
    """
    most = max((fold_count(t) for t in completed), default=0)
    return [t for t in completed if fold_count(t) == most]


def sort_across_families(rows: list[dict], metric: TuningMetric) -> list[dict]:
    """Families' best trials ranked on the folds all of them were scored on (all, unless
    the budget cut one family's CV short; then the common first folds)."""
    if not rows:
        return rows
    common = min(fold_count(r) for r in rows)
    for row in rows:
        scores = row.get("cv_scores")
        row["selection_folds"] = common
        row["selection_score"] = float(np.mean(scores[:common])) if scores else row[metric.name]
    return sort_best_first(rows, "selection_score", metric.mode)
