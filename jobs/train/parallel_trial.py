"""A data-parallel trial, as Ray Tune runs it: a Tune function trainable that launches a
Ray Train trainer (XGBoostTrainer or LightGBMTrainer, Train V2: the way Ray 2.60 combines
the two) over the train split read as Ray Data straight from storage.

The trial itself holds no CPU (a 1-byte memory bundle: Tune wants one resource); its
workers ask Ray Train for theirs, spread over the nodes. Their reports reach Tune through
Ray Train's TuneReportCallback, so ASHA stops a trial on the same per-round metric as a
single-worker one; the final result is reported here, with the model rank 0 saved as
the trial's checkpoint, in the same form as trial.run_trial's.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray
import ray.data
import ray.train
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from mlbatch import storage
from mlbatch_jobs.train.data import StoredSplits
from mlbatch_jobs.train.parallel_fit import train_worker
from mlbatch_jobs.train.trial import ROUNDS, TrialSettings
from mlbatch_jobs.train.tune_storage import TuneStorage

TRIAL_RESOURCES = {"cpu": 0, "memory": 1}


@dataclass(frozen=True)
class ParallelSettings:
    """What every data-parallel trial of a family shares, besides TrialSettings."""

    splits: StoredSplits
    workers: int
    cpus_per_worker: int
    storage: TuneStorage  # where Ray Train keeps the checkpoints rank 0 reports


@ray.remote(num_cpus=0)
class WorkerLog:
    """Where each worker of a trial ran and how many train rows its shard held."""

    def __init__(self):
        self.entries: dict[int, tuple[str, int]] = {}

    def add(self, rank: int, node: str, rows: int) -> None:
        self.entries[rank] = (node, rows)

    def sorted(self) -> list[tuple[str, int]]:
        return [self.entries[rank] for rank in sorted(self.entries)]


def read_split(uri: str, columns: list[str], *, blocks: int | None = None) -> ray.data.Dataset:
    """A split as Ray Data, read by Ray Data's own tasks from storage: local files, or S3
    through a filesystem that pickles without keys (mlbatch.arrow_s3)."""
    filesystem, path = storage.arrow_filesystem(uri)
    return ray.data.read_parquet(
        path, filesystem=filesystem, columns=columns, override_num_blocks=blocks
    )


def trainer_class(family: str):
    if family == "xgboost":
        from ray.train.xgboost import XGBoostTrainer

        return XGBoostTrainer
    from ray.train.lightgbm import LightGBMTrainer

    return LightGBMTrainer


def run_parallel_trial(config: dict, *, settings: TrialSettings, parallel: ParallelSettings):
    """The trainable: Tune passes config; the workers read their data themselves."""
    ray.data.DataContext.get_current().enable_progress_bars = False  # one line per block
    splits = parallel.splits
    trial_id = tune.get_context().get_trial_id()
    worker_log = WorkerLog.remote()
    trainer = trainer_class(settings.family)(
        train_worker,
        train_loop_config={
            "config": config,
            "splits": splits,
            "settings": settings,
            "worker_log": worker_log,
        },
        datasets={
            # One block per worker: each worker's shard is read by its own task.
            "train": read_split(splits.train_uri, splits.columns, blocks=parallel.workers),
            "valid": read_split(splits.valid_uri, splits.columns),
        },
        # Every worker scores the whole valid split (parallel_fit.py says why).
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        scaling_config=ray.train.ScalingConfig(
            num_workers=parallel.workers,
            resources_per_worker={"CPU": parallel.cpus_per_worker},
            placement_strategy="SPREAD",  # the point is the nodes' memory, not one node's
        ),
        run_config=ray.train.RunConfig(
            name=f"{settings.family}-workers-{trial_id}",
            storage_path=parallel.storage.path,
            storage_filesystem=parallel.storage.filesystem,
            callbacks=[TuneReportCallback()],
        ),
    )
    result = trainer.fit()
    metrics = dict(result.metrics)
    rounds = metrics.pop("rounds_trained")
    workers = ray.get(worker_log.sorted.remote())
    final = {
        **metrics,
        ROUNDS: rounds,
        "rounds_per_s": round(rounds / metrics["fit_s"], 2) if metrics.get("fit_s") else None,
        "cv_scores": None,
        "device": "cpu",
        "cpus": parallel.cpus_per_worker,
        "gpus": 0.0,
        "workers": parallel.workers,
        "worker_nodes": [node for node, _ in workers],
        "worker_rows": [rows for _, rows in workers],
        "final": True,
    }
    with result.checkpoint.as_directory() as folder:
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(folder))
