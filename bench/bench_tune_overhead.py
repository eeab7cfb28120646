"""Ray Tune's overhead in the train stage: the same N XGBoost configurations trained by a
plain process pool and by the stage's own Tune setup (object-store data, reused actors,
reports every few rounds, one checkpoint per trial), with the same parallelism, at about
2 s and about 10 s per trial. Reports wall times and the Tune/pool ratio of each.

    python bench/bench_tune_overhead.py [--parallel 2] [--short 16] [--long 8]

Target: a ratio of at most 1.10 at 10 s trials. The Ray start-up is timed apart (a stage
pays it once, whatever the number of trials).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

from mlbatch.spec import TrainSpec  # noqa: E402
from mlbatch_jobs.train.data import SearchData, TrainingData  # noqa: E402
from mlbatch_jobs.train.families import load_family  # noqa: E402
from mlbatch_jobs.train.metrics import tuning_metric  # noqa: E402
from mlbatch_jobs.train.models import FitOptions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROWS, COLUMNS = 60_000, 30  # as in shared/ENVIRONMENT.md's measurement
METRIC = tuning_metric("binary", None)


def synthetic_data(seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS + ROWS // 4, COLUMNS))
    signal = x[:, :5] @ rng.normal(size=5) + np.sin(3 * x[:, 5]) * x[:, 6] + 0.5 * x[:, 7] ** 2
    y = (signal + rng.normal(scale=1.0, size=len(x)) > 0).astype("int64")
    return TrainingData(
        task="binary", features=[f"f{i}" for i in range(COLUMNS)], categorical=[],
        classes=[0, 1], x_train=x[:ROWS], y_train=y[:ROWS], x_valid=x[ROWS:], y_valid=y[ROWS:],
    )  # fmt: skip


def configurations(count: int, seed: int) -> list[dict]:
    """Configs with every key of the stage's XGBoost space, so Tune samples none itself."""
    rng = np.random.default_rng(seed)
    return [
        {"learning_rate": float(rng.uniform(0.05, 0.2)), "max_depth": int(rng.integers(4, 8)),
         "min_child_weight": float(rng.uniform(1, 10)), "subsample": float(rng.uniform(0.6, 1)),
         "colsample_bytree": float(rng.uniform(0.6, 1)), "reg_lambda": 1.0, "reg_alpha": 0.01}
        for _ in range(count)
    ]  # fmt: skip


def fit_options(rounds: int) -> FitOptions:
    # Fixed rounds (no early stopping) so both sides do exactly the same work.
    return FitOptions(metric=METRIC, threads=1, max_rounds=rounds, early_stopping_rounds=rounds + 1)


def calibrate(data: TrainingData, seconds: float) -> int:
    """Rounds that make one trial take about `seconds` on one thread: two probes tell the
    time per round from the fixed cost (building the matrices, scoring)."""
    family, config = load_family("xgboost"), configurations(1, 99)[0]
    timings = {}
    for rounds in (20, 100):
        started = time.perf_counter()
        family.fit(config, data, fit_options(rounds))
        timings[rounds] = time.perf_counter() - started
    per_round = max((timings[100] - timings[20]) / 80, 1e-4)
    fixed = max(timings[20] - 20 * per_round, 0.0)
    return max(int((seconds - fixed) / per_round), 10)


_DATA: TrainingData | None = None


def _pool_start(data: TrainingData) -> None:
    global _DATA
    _DATA = data


def _pool_trial(config: dict, rounds: int) -> float:
    family = load_family("xgboost")
    fit = family.fit(config, _DATA, fit_options(rounds))
    return METRIC.score(_DATA.y_valid, family.predict(fit.model, _DATA.x_valid), 2)


def plain_pool(data: TrainingData, configs: list[dict], rounds: int, parallel: int) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(parallel, initializer=_pool_start, initargs=(data,)) as pool:
        list(pool.map(_pool_trial, configs, [rounds] * len(configs)))
    return time.perf_counter() - started


def tune_stage(data: TrainingData, configs: list[dict], rounds: int, parallel: int) -> float:
    """The configs through the train stage's search_family, replayed in order."""
    from ray.tune.search.optuna import OptunaSearch

    from mlbatch_jobs.train.resources import TrialResources
    from mlbatch_jobs.train.search import search_family
    from mlbatch_jobs.train.tune_storage import TuneStorage

    spec = TrainSpec(
        models=["xgboost"], num_samples=len(configs), time_budget_s=3600, scheduler="fifo",
        max_rounds=rounds, early_stopping_rounds=rounds + 1,
    )  # fmt: skip
    plan = TrialResources(cpus=1, gpus=0.0, device="cpu", concurrency=parallel)
    # Optuna evaluates points_to_evaluate first, in order: exactly the pool's configs.
    replay = OptunaSearch(points_to_evaluate=configs)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        grid = search_family(
            "xgboost", SearchData(data), spec, METRIC, budget_s=3600, plan=plan,
            storage=TuneStorage(uri=folder, path=folder), searcher=replay,
        )  # fmt: skip
        wall = time.perf_counter() - started
    errors = [r.error for r in grid if r.error is not None]
    if errors or len(grid) != len(configs):
        raise RuntimeError(f"{len(errors)} of {len(grid)} trials failed: {errors[:1]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--short", type=int, default=16, help="trials of ~2 s")
    parser.add_argument("--long", type=int, default=8, help="trials of ~10 s")
    args = parser.parse_args()
    from mlbatch_jobs.train.ray_runtime import local_ray

    data = synthetic_data()
    report = {"rows": ROWS, "columns": COLUMNS, "parallel": args.parallel,
              "load_average_before": os.getloadavg()[0], "cases": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tb-", dir="/tmp") as scratch:
        started = time.perf_counter()
        with local_ray(Path(scratch), num_cpus=args.parallel):
            report["ray_start_s"] = round(time.perf_counter() - started, 2)
            for seconds, count in ((2.0, args.short), (10.0, args.long)):
                rounds = calibrate(data, seconds)
                configs = configurations(count, seed=int(seconds))
                pool = plain_pool(data, configs, rounds, args.parallel)
                tuned = tune_stage(data, configs, rounds, args.parallel)
                case = {"target_trial_s": seconds, "trials": count, "rounds": rounds,
                        "pool_wall_s": round(pool, 2), "tune_wall_s": round(tuned, 2),
                        "ratio": round(tuned / pool, 3)}  # fmt: skip
                print(json.dumps(case), flush=True)
                report["cases"].append(case)
    report["load_average_after"] = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"tune-overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
