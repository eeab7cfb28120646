"""One data-parallel trial's work on each Ray Train worker: read this worker's shard of
the train split and the whole valid split from Ray Data, fit the family's booster with
the library's collective (XGBoost's rabit, LightGBM's socket network, both set up by
Ray Train), report every few rounds, and report the final scores once, rank 0 with the
model as the checkpoint.

Every worker holds the whole valid split: the per-round metric is then the one the
single-worker path reports (XGBoost reduces it over workers, which identical rows leave
unchanged; LightGBM computes it locally), and the same on every worker, so early
stopping ends every worker at the same round. The deadline is decided by rank 0 at each
report and broadcast: a worker that stopped alone would leave the others waiting.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import ray
import ray.train
from ray.train import Checkpoint

from mlbatch_jobs.train.data import StoredSplits, TrainingData, split_arrays
from mlbatch_jobs.train.families import load_family
from mlbatch_jobs.train.target_transform import forward, inverse
from mlbatch_jobs.train.trial import CURVE_POINTS, PREDICTIONS_FILE, ROUNDS


def train_worker(loop: dict) -> None:
    """Ray Train's train_loop_per_worker; loop: config, splits, settings, worker_log."""
    config, splits, settings = loop["config"], loop["splits"], loop["settings"]
    family = load_family(settings.family)
    context = ray.train.get_context()
    rank = context.get_world_rank()
    # The shards first, then the family's clock (shared with every worker): reading is
    # the start-up a single-worker trial has done before it starts, through its arguments.
    data = shard_data(splits)
    deadline = settings.deadline()
    options = replace(
        settings.fit_options(deadline=deadline, reporting=False),
        on_rounds=_report_round(settings.metric.name),
        stop_after=AgreedStop(deadline, every=settings.report_every),
        library_params=library_params(family.name),
    )
    started = time.time()
    fit = family.fit(config, data, options)
    fit_s = time.time() - started
    # Every worker has the whole model and valid split: each scores it, rank 0 saves it.
    scale = data.target_transform
    predicted = inverse(scale, family.predict(fit.model, data.x_valid))
    valid = settings.metric.score(inverse(scale, data.y_valid), predicted, data.num_classes)
    node = ray.get_runtime_context().get_node_id()
    ray.get(loop["worker_log"].add.remote(rank, node, len(data.y_train)))
    curve = fit.curve.thinned(CURVE_POINTS)
    # No ROUNDS here: this report reaches Tune too, and ASHA must not stop the trial on it
    # before run_parallel_trial reports the final result with the checkpoint.
    result = {
        settings.metric.name: valid,
        "valid": valid,
        "fit_s": round(fit_s, 3),
        "rounds_trained": fit.rounds,
        "best_iteration": fit.best_iteration,
        "allowed_s": round(deadline - started, 3),
        "node": node,
        "curve_rounds": curve.rounds,
        "curve_train": curve.train,
        "curve_valid": curve.valid,
    }
    if rank != 0:
        ray.train.report(result)
        return
    with tempfile.TemporaryDirectory(prefix="mlbatch-parallel-") as folder:
        family.save(fit, Path(folder))
        np.save(Path(folder) / PREDICTIONS_FILE, predicted.astype("float32"), allow_pickle=False)
        ray.train.report(result, checkpoint=Checkpoint.from_directory(folder))


def shard_data(splits: StoredSplits) -> TrainingData:
    """This worker's shard of train and the whole valid split, as the families take them."""
    train = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid = ray.train.get_dataset_shard("valid").materialize().to_pandas()
    x_train, y_train = split_arrays(train, splits.features, splits.target_column, "train shard")
    x_valid, y_valid = split_arrays(valid, splits.features, splits.target_column, "valid")
    scale = splits.target_transform
    return TrainingData(
        task=splits.task,
        features=splits.features,
        categorical=splits.categorical,
        classes=splits.classes,
        x_train=x_train,
        y_train=forward(scale, y_train),
        x_valid=x_valid,
        y_valid=forward(scale, y_valid),
        target_transform=scale,
    )


def library_params(family: str) -> dict:
    """The library's distributed parameters: XGBoost needs none inside Ray Train's
    communicator; LightGBM takes the machines list Ray Train made, with the rows already
    split among workers."""
    if family != "lightgbm":
        return {}
    from ray.train.lightgbm import get_network_params

    return {"tree_learner": "data_parallel", "pre_partition": True, **get_network_params()}


class AgreedStop:
    """Stop after a round once the deadline passed, asked at every report round only, and
    decided by rank 0 for all workers (the others take its answer)."""

    def __init__(self, deadline: float, *, every: int):
        self.deadline, self.every = deadline, every

    def __call__(self, rounds: int) -> bool:
        if rounds % self.every:
            return False
        from ray.train.collective import broadcast_from_rank_zero

        return bool(broadcast_from_rank_zero(time.time() >= self.deadline))


def _report_round(metric: str):
    def report(rounds: int, value: float) -> None:
        ray.train.report({metric: float(value), ROUNDS: rounds, "final": False})

    return report
