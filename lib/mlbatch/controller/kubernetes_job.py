"""The Job builder: one stage attempt as a `batch/v1` Job, built by a pure function.

`build_job(task, settings)` touches no cluster, so `mlbatch render` and the tests see
exactly what the kubernetes executor creates. The choices follow DESIGN §5.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml

from mlbatch.controller.executor import StageTask
from mlbatch.errors import BadInput, ExitCode

STAGE_CONTAINER = "stage"  # the one container of every stage pod (podFailurePolicy names it)
SHARED_MEMORY_STAGES = frozenset({"train"})  # Ray's object store lives in /dev/shm
NAME_LIMIT = 63  # the Job name becomes the `job-name` label value on its pods: 63 at most

RUN_ID = re.compile(r"^\d{8}-\d{6}-[a-z0-9]{6}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# Env names that smell of credentials: those come from the Secret, never from the task.
SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY", re.I)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """How stage attempts become Jobs, and how the executor reaches the cluster.

    The defaults match the Helm chart installed as release `mlbatch`; in-cluster, the
    chart hands its own names to the controller as MLBATCH_K8S_* (see `from_env`).
    """

    # Namespace of the Jobs (and of the ServiceAccount, Secret and ConfigMap they use).
    namespace: str = "default"
    # Kubeconfig context to talk to; None = the current context, or in-cluster config.
    context: str | None = None
    # Stage images are f"{image_repository}-{stage}:{code_version}", e.g.
    # "localhost/mlbatch-train:3fa2c1d0"; the tag is the code version (DESIGN §1, cache).
    image_repository: str = "localhost/mlbatch"
    # Never, IfNotPresent or Always. IfNotPresent suits images loaded into kind and
    # immutable, content-derived tags.
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # Secrets holding registry credentials; none by default (the chart puts them on the
    # ServiceAccount instead, which pods inherit).
    image_pull_secrets: tuple[str, ...] = ()
    # ServiceAccount the stage pods run as (the chart's `<release>-stage`); its API token
    # is never mounted (automountServiceAccountToken: false): stages do not call the API.
    service_account: str = "mlbatch-stage"
    # "secret": storage keys come from `credentials_secret` (envFrom);
    # "serviceAccount": no keys at all, the ServiceAccount carries a workload identity
    # (EKS IRSA, GKE or Azure Workload Identity) that the AWS SDK picks up by itself.
    credentials_mode: Literal["secret", "serviceAccount"] = "secret"
    # Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) become env vars in
    # "secret" mode; its values never appear in the Job, args or logs.
    credentials_secret: str = "mlbatch-credentials"
    # ConfigMap saying where storage is, never how to log in; None = no ConfigMap (AWS
    # S3 defaults). Each of `storage_config_keys` becomes an env var of the same name,
    # optional, so a ConfigMap without AWS_ENDPOINT_URL means AWS S3 itself.
    storage_config_map: str | None = "mlbatch-settings"
    storage_config_keys: tuple[str, ...] = (
        "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "MLBATCH_BUCKET",
    )  # fmt: skip
    # Seconds a finished Job (and its pod) stays for `kubectl describe` before
    # Kubernetes deletes it; logs outlive it in storage. Default: one day.
    ttl_seconds_after_finished: int = 86400
    # Size cap of the /tmp emptyDir (scratch space, HOME, caches); None = no cap.
    tmp_size_limit: str | None = "8Gi"
    # Size cap of the memory-backed /dev/shm of the train pod; None = up to the pod's
    # memory limit (its usage counts against that limit either way).
    shm_size_limit: str | None = None
    # nodeSelector and tolerations of every stage pod; empty by default.
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    # nodeSelector per stage, merged over node_selector, e.g. {"train": {"pool": "big"}}.
    node_selector_by_stage: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # Added to GPU pods (resources.gpu > 0): NVIDIA GPU feature discovery's node label and
    # the taint GPU node pools usually carry.
    gpu_node_selector: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    gpu_tolerations: tuple[dict[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    # app.kubernetes.io/instance of every Job: the Helm release that owns the stages.
    instance: str = "mlbatch"
    # Extra labels and annotations on every Job and pod (cost centre, team, Kueue queue).
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    # API calls are tried this many times in all on 429 and 5xx answers and broken
    # connections, waiting an exponentially growing, jittered delay between tries
    # (starting at api_retry_delay_s, at most api_retry_max_delay_s, or Retry-After).
    api_attempts: int = 6
    api_retry_delay_s: float = 0.5
    api_retry_max_delay_s: float = 30.0
    # How long an attempt may wait in ways that usually never clear up before it fails,
    # instead of sitting out activeDeadlineSeconds (kubernetes_pending.py). Each is
    # counted from when this controller first saw the condition, in seconds:
    # - the Job has no pod and its events say FailedCreate (a missing ServiceAccount, a
    #   quota, an admission webhook or Pod Security refusing the pod). Default 60.
    create_timeout_s: float = 60.0
    # - the pod is PodScheduled=False/Unschedulable (no node has the GPU, memory or label
    #   it asks for). 0 = wait for activeDeadlineSeconds, e.g. where a cluster
    #   autoscaler may still add a node. Default 120.
    unschedulable_timeout_s: float = 120.0
    # - the image cannot be pulled (ErrImagePull, ImagePullBackOff): the kubelet's own
    #   retries get this long first. ErrImageNeverPull and InvalidImageName fail at once.
    #   Default 120.
    image_pull_timeout_s: float = 120.0
    # The controller's own Job, when it runs in-cluster as one (the chart passes its name
    # and uid from the pod's labels): every stage Job gets an ownerReference to it, so
    # deleting the controller Job deletes its stages (garbage collection) instead of
    # orphaning them. Only set within the same namespace (an owner in another namespace
    # would look absent to the garbage collector, which then deletes the stage Job).
    owner_job_name: str | None = None
    owner_job_uid: str | None = None
    owner_namespace: str | None = None

    @classmethod
    def from_env(
        cls, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> KubernetesSettings:
        """Defaults, then the chart's MLBATCH_K8S_* variables, then non-None overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            field: env[name] for name, field in SETTINGS_ENV.items() if env.get(name)
        }
        for name, field in SECONDS_ENV.items():
            if env.get(name):
                try:
                    values[field] = float(env[name])
                except ValueError as error:
                    raise BadInput(f"{name} must be a number of seconds: {error}") from error
        if values.get("credentials_mode", "secret") not in ("secret", "serviceAccount"):
            raise BadInput(
                f"MLBATCH_K8S_CREDENTIALS_MODE must be secret or serviceAccount, "
                f"not {values['credentials_mode']!r}"
            )
        try:
            scheduling = json.loads(env.get("MLBATCH_K8S_SCHEDULING") or "{}")
        except ValueError as error:
            raise BadInput(f"MLBATCH_K8S_SCHEDULING is not JSON: {error}") from error
        gpu = scheduling.get("gpu") or {}
        for field, value in (
            ("node_selector", scheduling.get("nodeSelector")),
            ("tolerations", tuple(scheduling.get("tolerations") or ()) or None),
            ("node_selector_by_stage", scheduling.get("nodeSelectorByStage")),
            ("gpu_node_selector", gpu.get("nodeSelector")),
            ("gpu_tolerations", tuple(gpu["tolerations"]) if "tolerations" in gpu else None),
        ):
            if value is not None:
                values[field] = value
        values |= {name: value for name, value in overrides.items() if value is not None}
        return cls(**values)


# What the chart's controller CronJob sets (charts/mlbatch/templates/controller-cronjob.yaml).
SETTINGS_ENV = {
    "MLBATCH_K8S_IMAGE_REPOSITORY": "image_repository",
    "MLBATCH_K8S_IMAGE_PULL_POLICY": "image_pull_policy",
    "MLBATCH_K8S_STAGE_SERVICE_ACCOUNT": "service_account",
    "MLBATCH_K8S_CREDENTIALS_MODE": "credentials_mode",
    "MLBATCH_K8S_SECRET": "credentials_secret",
    "MLBATCH_K8S_CONFIG_MAP": "storage_config_map",
    "MLBATCH_K8S_INSTANCE": "instance",
    "MLBATCH_K8S_OWNER_JOB": "owner_job_name",
    "MLBATCH_K8S_OWNER_JOB_UID": "owner_job_uid",
    "MLBATCH_K8S_OWNER_NAMESPACE": "owner_namespace",
}
SECONDS_ENV = {
    "MLBATCH_K8S_CREATE_TIMEOUT_S": "create_timeout_s",
    "MLBATCH_K8S_UNSCHEDULABLE_TIMEOUT_S": "unschedulable_timeout_s",
    "MLBATCH_K8S_IMAGE_PULL_TIMEOUT_S": "image_pull_timeout_s",
}
# ConfigMap keys only a stage itself needs: train connects to a RayCluster when set, etl
# to a Dask scheduler.
STAGE_CONFIG_KEYS = {"train": ("RAY_ADDRESS",), "etl": ("DASK_SCHEDULER_ADDRESS",)}


def refuse_file_storage(run_uri: str) -> None:
    """Raise BadInput unless the run lives in object storage that pods can reach."""
    if not run_uri.startswith("s3://"):
        raise BadInput(
            f"the kubernetes executor needs s3:// storage, not {run_uri!r}: pods cannot "
            "see this machine's files; pass --storage s3://BUCKET (or set MLBATCH_STORAGE)"
        )


def job_name(*, run_id: str, stage: str, attempt: str) -> str:
    """The Job's deterministic name, so a restarted controller finds what it launched."""
    name = f"{run_id}-{stage}-{attempt}"
    if len(name) <= NAME_LIMIT:
        return name
    # Still deterministic and unique: a hash of the full name replaces the overflow.
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAME_LIMIT - 9].rstrip('-')}-{digest}"


def job_labels(task: StageTask, settings: KubernetesSettings) -> dict[str, str]:
    """The recommended app.kubernetes.io labels plus mlbatch's own, on the Job and its pod."""
    # kubernetes.io/docs/concepts/overview/working-with-objects/common-labels
    return {
        **settings.labels,
        "app.kubernetes.io/name": "mlbatch",
        "app.kubernetes.io/instance": settings.instance,
        "app.kubernetes.io/component": task.stage,
        "app.kubernetes.io/part-of": "mlbatch",
        "app.kubernetes.io/managed-by": "mlbatch-controller",
        "app.kubernetes.io/version": task.code_version,
        "mlbatch.io/run": task.run_id,
        "mlbatch.io/stage": task.stage,
        "mlbatch.io/attempt": task.attempt,
    }


def build_job(task: StageTask, settings: KubernetesSettings) -> dict[str, Any]:
    """The batch/v1 Job that runs one attempt of one stage."""
    _check_task(task)
    labels = job_labels(task, settings)
    gpu = task.resources.gpu > 0
    pod_spec: dict[str, Any] = {
        "serviceAccountName": settings.service_account,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        # Service env vars (FOO_SERVICE_HOST...) are noise to a batch job.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(task, settings)],
        "volumes": _volumes(task, settings),
    }
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    node_selector = {
        **settings.node_selector,
        **settings.node_selector_by_stage.get(task.stage, {}),
        **(settings.gpu_node_selector if gpu else {}),
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [*settings.tolerations, *(settings.gpu_tolerations if gpu else ())]
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]

    metadata: dict[str, Any] = {
        "name": job_name(run_id=task.run_id, stage=task.stage, attempt=task.attempt),
        "namespace": settings.namespace,
        "labels": labels,
    }
    if settings.annotations:
        metadata["annotations"] = dict(settings.annotations)
    owner = owner_reference(settings)
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            # The controller owns retries (with backoff, as new attempts): one pod per Job.
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": task.timeout_s,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            # kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
            "podFailurePolicy": {
                "rules": [
                    # Evicted or preempted pods are replaced without failing the Job.
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                    # Bad input, failed gate, superseded: a rerun cannot help.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": STAGE_CONTAINER,
                            "operator": "In",
                            "values": [
                                int(ExitCode.BAD_INPUT),
                                int(ExitCode.VALIDATION_FAILED),
                                int(ExitCode.SUPERSEDED),
                            ],
                        },
                    },
                ]
            },
            # A replacement pod starts only once the old one is gone, so two pods never
            # write the same attempt (the only value allowed with a podFailurePolicy).
            "podReplacementPolicy": "Failed",
            "template": {
                "metadata": {"labels": dict(labels), **_annotations(settings)},
                "spec": pod_spec,
            },
        },
    }


def owner_reference(settings: KubernetesSettings) -> dict[str, Any] | None:
    """The ownerReference to the controller's own Job, when it runs as one (else None)."""
    if not (settings.owner_job_name and settings.owner_job_uid):
        return None
    if (settings.owner_namespace or settings.namespace) != settings.namespace:
        return None  # owners are namespaced: a cross-namespace one reads as deleted
    # kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": settings.owner_job_name,
        "uid": settings.owner_job_uid,
        # Not the stage Job's managing controller (the Job controller manages pods, not
        # Jobs), and never blocking: deleting the controller Job must not wait on stages,
        # and blocking would need `update` on jobs/finalizers besides.
        "controller": False,
        "blockOwnerDeletion": False,
    }


def render_job_yaml(task: StageTask, settings: KubernetesSettings) -> str:
    """The Job as YAML, as `mlbatch render` prints it."""
    return yaml.safe_dump(build_job(task, settings), sort_keys=False, default_flow_style=False)


def _check_task(task: StageTask) -> None:
    refuse_file_storage(task.run_uri)
    if not RUN_ID.match(task.run_id):
        raise BadInput(f"run id {task.run_id!r} is not of the form YYYYMMDD-HHMMSS-xxxxxx")
    if not DNS_LABEL.match(task.stage) or not DNS_LABEL.match(task.attempt):
        raise BadInput(
            f"stage {task.stage!r} and attempt {task.attempt!r} must be lowercase DNS labels"
        )
    if not LABEL_VALUE.match(task.code_version):
        raise BadInput(
            f"code version {task.code_version!r} is not a valid image tag and label value"
        )
    leaked = sorted(name for name in task.env if SECRET_ENV.search(name))
    if leaked:
        raise BadInput(
            f"env {', '.join(leaked)} looks like credentials: put them in the "
            "credentials Secret (or use a workload identity), never in a Job"
        )
    if task.timeout_s <= 0:
        raise BadInput(f"timeout must be positive, not {task.timeout_s} s")


def _annotations(settings: KubernetesSettings) -> dict[str, Any]:
    return {"annotations": dict(settings.annotations)} if settings.annotations else {}


def _container(task: StageTask, settings: KubernetesSettings) -> dict[str, Any]:
    resources = task.resources
    # Limits equal requests (Guaranteed QoS): last to be evicted under node pressure, and
    # Ray, XGBoost and Dask size their thread pools from the cgroup CPU quota.
    limits: dict[str, Any] = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpu > 0:
        # A quantity is a string: kubernetes' client (37+) refuses the int 1 before sending.
        limits["nvidia.com/gpu"] = str(resources.gpu)
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if task.stage in SHARED_MEMORY_STAGES:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    container: dict[str, Any] = {
        "name": STAGE_CONTAINER,
        "image": f"{settings.image_repository}-{task.stage}:{task.code_version}",
        "imagePullPolicy": settings.image_pull_policy,
        "command": task.command,
        "env": _env(task, settings),
    }
    if settings.credentials_mode == "secret":
        # Explicit `env` entries win over envFrom keys, so the run's own values always hold.
        container["envFrom"] = [{"secretRef": {"name": settings.credentials_secret}}]
    container |= {
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": resources.memory},
            "limits": limits,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        # A stage writes one clear line to /dev/termination-log on failure; when it
        # dies before that (OOM, import error), the log tail is the message instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return container


def _env(task: StageTask, settings: KubernetesSettings) -> list[dict[str, Any]]:
    # The root filesystem is read-only: everything that writes a dotfile or cache goes to /tmp.
    writable = {
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_CONFIG_DIR": "/tmp/jupyter/config",
        "JUPYTER_DATA_DIR": "/tmp/jupyter/data",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter/runtime",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env: dict[str, dict[str, Any]] = {
        name: {"name": name, "value": value} for name, value in writable.items()
    }
    if settings.storage_config_map:
        keys = (*settings.storage_config_keys, *STAGE_CONFIG_KEYS.get(task.stage, ()))
        for key in keys:
            ref = {"name": settings.storage_config_map, "key": key, "optional": True}
            env[key] = {"name": key, "valueFrom": {"configMapKeyRef": ref}}
    values = {
        **dict(sorted(task.env.items())),
        "MLBATCH_RUN_URI": task.run_uri,
        "MLBATCH_CODE_VERSION": task.code_version,
    }
    env |= {name: {"name": name, "value": value} for name, value in values.items()}
    return list(env.values())


def _volumes(task: StageTask, settings: KubernetesSettings) -> list[dict[str, Any]]:
    tmp: dict[str, Any] = {"sizeLimit": settings.tmp_size_limit} if settings.tmp_size_limit else {}
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": tmp}]
    if task.stage in SHARED_MEMORY_STAGES:
        shm: dict[str, Any] = {"medium": "Memory"}
        if settings.shm_size_limit:
            shm["sizeLimit"] = settings.shm_size_limit
        volumes.append({"name": "dshm", "emptyDir": shm})
    return volumes
