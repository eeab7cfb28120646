"""CPUs and GPUs per trial, and how many trials at once, from what Ray sees.

GPU-capable families (XGBoost always, LightGBM where its build has a GPU learner) use
GPUs when the cluster has some, unless the spec says never; a spec that requires a GPU
fails before any trial when there is none. The choice is a pure function of the cluster's
resources, so it is tested with a fake GPU resource.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import ray

from mlbatch.errors import BadInput
from mlbatch.spec.train import TrainSpec


@dataclass(frozen=True)
class TrialResources:
    cpus: int  # threads a trial trains with
    gpus: float
    device: str  # "cpu", or the family's GPU device ("cuda"; "gpu" for LightGBM's OpenCL)
    concurrency: int  # trials side by side

    @property
    def ray_resources(self) -> dict:
        return {"cpu": self.cpus, "gpu": self.gpus}


def cluster_resources() -> dict[str, float]:
    """CPU and GPU totals of the Ray cluster (local or connected)."""
    totals = ray.cluster_resources()
    return {"CPU": float(totals.get("CPU", 0)), "GPU": float(totals.get("GPU", 0))}


def check_gpu_requirement(spec: TrainSpec, cluster: dict[str, float]) -> None:
    """BadInput before any trial when the spec requires a GPU and Ray sees none."""
    if spec.resources.gpu == "required" and cluster["GPU"] <= 0:
        raise BadInput(
            "train.resources.gpu is required, but the Ray cluster has no GPU "
            f"(it has {cluster['CPU']:g} CPUs): run on a GPU node or set gpu: auto"
        )


def plan_trials(
    family, spec: TrainSpec, cluster: dict[str, float], *, gpu_device: str | None
) -> TrialResources:
    """Resources for the family's trials. gpu_device: the device the family's library can
    use on this cluster's GPUs (None when it cannot)."""
    wanted = spec.resources
    use_gpu = family.gpu and gpu_device and wanted.gpu != "never" and cluster["GPU"] > 0
    cpus_total = max(int(cluster["CPU"]), 1)
    if use_gpu:
        gpus = wanted.gpus_per_trial or 1.0
        concurrency = max(math.floor(cluster["GPU"] / gpus), 1)
        cpus = wanted.cpus_per_trial or max(cpus_total // concurrency, 1)
        device = gpu_device
    else:
        # One thread per trial, trials side by side: on a few cores many small trials finish
        # sooner than threads fighting over one; the spec can ask for more per trial.
        gpus, device = 0.0, "cpu"
        cpus = min(wanted.cpus_per_trial or 1, cpus_total)
        concurrency = max(cpus_total // cpus, 1)
    concurrency = min(concurrency, spec.num_samples or concurrency,
                      spec.max_concurrent_trials or concurrency)
    return TrialResources(cpus=cpus, gpus=gpus, device=device, concurrency=concurrency)


def gpu_device(family_name: str, cluster: dict[str, float]) -> str | None:
    """The device string the family can use on the cluster's GPUs, None when it cannot."""
    if cluster["GPU"] <= 0:
        return None
    if family_name == "xgboost":
        return "cuda"  # the wheel carries CUDA; the driver comes from the node
    if family_name == "lightgbm":
        # Only a LightGBM built with a GPU learner can; find out on a GPU worker itself.
        return ray.get(_lightgbm_gpu_device.options(num_gpus=1).remote())
    return None


@ray.remote(num_cpus=0)
def _lightgbm_gpu_device() -> str | None:
    import lightgbm

    x = np.random.default_rng(0).random((200, 2))
    for device in ("cuda", "gpu"):
        try:
            lightgbm.train(
                {"device_type": device, "verbosity": -1, "objective": "regression"},
                lightgbm.Dataset(x, label=x[:, 0]), num_boost_round=1,
            )  # fmt: skip
            return device
        except lightgbm.basic.LightGBMError:
            continue
    return None
