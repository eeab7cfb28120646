"""Whether a search trains XGBoost and LightGBM data-parallel, and with what resources.

`train.data_parallel: auto` (the default) goes data-parallel when the train split's
feature matrix, as one trial would hold it (rows x features x 8 bytes: data.py builds
float64 arrays), is over WORKER_MEMORY_SHARE of one worker's memory: the Ray `memory`
resource of a node divided by its CPUs, the smallest over the cluster's nodes (a trial
may land on any). A single-worker trial holds the matrix about three times over (the
arrays, the library's own copy, the object store's), so a quarter is where it starts to
risk the worker's memory. `always` and `never` decide without measuring.

A data-parallel trial needs a CPU per worker, plus one left for Ray Data's read tasks:
with every CPU held by trainers the reads never run, and the trial waits forever.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray

from mlbatch.errors import BadInput
from mlbatch.spec.train import TrainSpec

PARALLEL_FAMILIES = ("xgboost", "lightgbm")  # the others always train in one worker
WORKER_MEMORY_SHARE = 0.25
READ_CPUS = 1  # kept free for Ray Data's read tasks


@dataclass(frozen=True)
class ParallelPlan:
    workers: int  # Ray Train workers per trial
    cpus_per_worker: int
    concurrency: int  # trials side by side

    @property
    def cpus_per_trial(self) -> int:
        return self.workers * self.cpus_per_worker


def worker_memory_bytes() -> float:
    """One worker's memory: the smallest node's Ray `memory` resource per CPU."""
    shares = [
        node["Resources"].get("memory", 0.0) / node["Resources"]["CPU"]
        for node in ray.nodes()
        if node.get("Alive") and node["Resources"].get("CPU", 0) > 0
    ]
    return min(shares) if shares else 0.0


def decide(
    spec: TrainSpec, *, table_bytes: int, worker_memory: float, cluster_cpus: float | None = None
) -> tuple[bool, str]:
    """(data-parallel or not, why), from the spec's setting and the table's size. With
    `auto`, a cluster too small for a data-parallel trial (cluster_cpus, when given)
    trains in one worker, as before, rather than fail: the default never stops a run."""
    if not set(spec.models) & set(PARALLEL_FAMILIES):
        return False, "no listed family trains data-parallel (XGBoost, LightGBM)"
    if spec.data_parallel != "auto":
        return spec.data_parallel == "always", f"train.data_parallel is {spec.data_parallel}"
    limit = WORKER_MEMORY_SHARE * worker_memory
    size = f"the train matrix is {table_bytes / 2**20:.1f} MiB"
    if worker_memory <= 0 or table_bytes <= limit:
        return False, f"{size}, within a quarter of one worker's {worker_memory / 2**20:.0f} MiB"
    why = f"{size}, over a quarter of one worker's {worker_memory / 2**20:.0f} MiB"
    needed = _cpus_needed(spec)
    if cluster_cpus is not None and cluster_cpus < needed:
        return False, (f"{why}, but a data-parallel trial needs {needed} CPUs and the Ray "
                       f"cluster has {cluster_cpus:g}: one worker per trial")  # fmt: skip
    return True, why


def _cpus_needed(spec: TrainSpec) -> int:
    return spec.data_parallel_workers * (spec.resources.cpus_per_trial or 1) + READ_CPUS


def plan(spec: TrainSpec, cluster: dict[str, float]) -> ParallelPlan:
    """Workers, their CPUs and the trials at once; BadInput when the cluster is too small."""
    workers = spec.data_parallel_workers
    cpus = spec.resources.cpus_per_trial or 1
    needed = _cpus_needed(spec)
    if cluster["CPU"] < needed:
        raise BadInput(
            f"data-parallel training with {workers} workers of {cpus} CPU needs {needed} CPUs "
            f"(one for Ray Data's reads), but the Ray cluster has {cluster['CPU']:g}: "
            "lower train.data_parallel_workers or set train.data_parallel: never"
        )
    concurrency = max(int(cluster["CPU"] - READ_CPUS) // (workers * cpus), 1)
    concurrency = min(
        concurrency, spec.num_samples or concurrency, spec.max_concurrent_trials or concurrency
    )
    return ParallelPlan(workers=workers, cpus_per_worker=cpus, concurrency=concurrency)
