"""The Job builder: every Job it can produce, checked against the upstream schema and, field
by field, against Pod Security "restricted" plus a read-only root (which no schema checks);
and the pure mapping from Job and pod state to a StageStatus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mlbatch.controller.executor import Resources, StageTask, State
from mlbatch.controller.kubernetes_executor import job_status
from mlbatch.controller.kubernetes_job import (
    KubernetesSettings,
    build_job,
    job_name,
    refuse_file_storage,
    render_job_yaml,
)
from mlbatch.errors import BadInput

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples" / "jobs"
KUBERNETES_VERSION = "1.33.0"
STAGES = ["etl", "explore", "features", "train", "evaluate", "predict"]
RUN_ID = "20261126-153000-a1b2c3"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted)
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def make_task(stage: str = "train", *, gpu: int = 0, **changes) -> StageTask:
    fields = {
        "run_id": RUN_ID,
        "run_uri": f"s3://mlbatch/runs/{RUN_ID}",
        "stage": stage,
        "attempt": "1-3fa2",
        "code_version": "0123456789ab",
        "timeout_s": 5400,
        "resources": Resources(cpu="2", memory="4Gi", gpu=gpu),
        "env": {"MLBATCH_LOG_LEVEL": "info"},
    }
    return StageTask(**(fields | changes))


def every_job() -> list:
    jobs = []
    for stage in STAGES:
        for gpu in (0, 1):
            for mode in ("secret", "serviceAccount"):
                task = make_task(stage, gpu=gpu)
                settings = KubernetesSettings(namespace="ml", credentials_mode=mode)
                label = f"{stage}-{'gpu' if gpu else 'cpu'}-{mode}"
                jobs.append(pytest.param(task, settings, id=label))
    return jobs


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_every_job_passes_the_upstream_schema_strictly(task, settings):
    kubernetes_validate.validate(build_job(task, settings), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_every_pod_meets_pod_security_restricted_with_a_read_only_root(task, settings):
    pod = build_job(task, settings)["spec"]["template"]["spec"]
    pod_security = pod["securityContext"]
    assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"))
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 65532
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    assert "sysctls" not in pod_security and "seLinuxOptions" not in pod_security
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "mlbatch-stage"
    assert pod["restartPolicy"] == "Never"
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, volume
    containers = pod["containers"] + pod.get("initContainers", [])
    assert [c["name"] for c in containers] == ["stage"]
    for container in containers:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["privileged"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security.get("runAsUser", 65532) != 0
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert "procMount" not in security and "seLinuxOptions" not in security
        assert not any(port.get("hostPort") for port in container.get("ports", []))
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        # With a read-only root, every writable path is an emptyDir.
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/tmp"] == "tmp"
        env = {e["name"]: e.get("value") for e in container["env"]}
        for name in ("HOME", "TMPDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "IPYTHONDIR",
                     "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):  # fmt: skip
            assert env[name].startswith("/tmp"), name


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_every_job_is_one_attempt_that_the_controller_retries(task, settings):
    job = build_job(task, settings)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["completions"] == spec["parallelism"] == 1
    assert spec["activeDeadlineSeconds"] == task.timeout_s
    assert spec["ttlSecondsAfterFinished"] == settings.ttl_seconds_after_finished
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "stage", "operator": "In", "values": [2, 3, 4]},
        },
    ]
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == task.command
    assert "args" not in container
    assert container["image"] == f"localhost/mlbatch-{task.stage}:0123456789ab"
    assert container["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_names_and_labels_are_deterministic_and_valid(task, settings):
    job = build_job(task, settings)
    assert job == build_job(task, settings)
    metadata = job["metadata"]
    assert metadata["name"] == f"{RUN_ID}-{task.stage}-1-3fa2"
    assert len(metadata["name"]) <= 63 and DNS_LABEL.match(metadata["name"])
    assert metadata["namespace"] == "ml"
    expected = {
        "app.kubernetes.io/name": "mlbatch",
        "app.kubernetes.io/instance": "mlbatch",
        "app.kubernetes.io/component": task.stage,
        "app.kubernetes.io/part-of": "mlbatch",
        "app.kubernetes.io/managed-by": "mlbatch-controller",
        "app.kubernetes.io/version": "0123456789ab",
        "mlbatch.io/run": RUN_ID,
        "mlbatch.io/stage": task.stage,
        "mlbatch.io/attempt": "1-3fa2",
    }
    assert metadata["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in expected.values())


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_environment_carries_the_run_and_storage_but_never_credentials(task, settings):
    container = build_job(task, settings)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert len(env) == len(container["env"]), "no variable is set twice"
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    assert values["MLBATCH_RUN_URI"] == task.run_uri
    assert values["MLBATCH_CODE_VERSION"] == task.code_version
    assert values["MLBATCH_LOG_LEVEL"] == "info"
    refs = {name: e["valueFrom"]["configMapKeyRef"] for name, e in env.items() if "valueFrom" in e}
    storage = {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "MLBATCH_BUCKET"}
    own = {"train": {"RAY_ADDRESS"}, "etl": {"DASK_SCHEDULER_ADDRESS"}}.get(task.stage, set())
    assert set(refs) == storage | own
    for name, ref in refs.items():
        assert ref == {"name": "mlbatch-settings", "key": name, "optional": True}
    if settings.credentials_mode == "secret":
        assert container["envFrom"] == [{"secretRef": {"name": "mlbatch-credentials"}}]
    else:
        assert "envFrom" not in container
    text = render_job_yaml(task, settings)
    assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", text)


@pytest.mark.parametrize(("task", "settings"), every_job())
def test_gpu_stages_get_gpus_and_gpu_nodes_and_train_gets_shared_memory(task, settings):
    pod = build_job(task, settings)["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "4Gi"}
    if task.resources.gpu:
        assert resources["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    else:
        assert resources["limits"] == {"cpu": "2", "memory": "4Gi"}
        assert "nodeSelector" not in pod and "tolerations" not in pod
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    if task.stage == "train":
        assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"} and "/dev/shm" in mounts
    else:
        assert "dshm" not in volumes and "/dev/shm" not in mounts


def test_settings_reach_the_job():
    settings = KubernetesSettings(
        image_repository="registry.example.com/ml/mlbatch",
        image_pull_policy="Always",
        image_pull_secrets=("regcred",),
        service_account="stage-sa",
        credentials_secret="s3-keys",
        storage_config_map=None,
        ttl_seconds_after_finished=600,
        tmp_size_limit=None,
        shm_size_limit="1Gi",
        node_selector={"pool": "batch"},
        node_selector_by_stage={"train": {"pool": "train"}, "etl": {"pool": "io"}},
        tolerations=({"key": "batch", "operator": "Exists", "effect": "NoSchedule"},),
        instance="prod",
        labels={"team": "fraud"},
        annotations={"example.com/cost-centre": "42"},
    )
    job = build_job(make_task("train", gpu=2), settings)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/ml/mlbatch-train:0123456789ab"
    assert container["imagePullPolicy"] == "Always"
    assert container["envFrom"] == [{"secretRef": {"name": "s3-keys"}}]
    assert not any("valueFrom" in e for e in container["env"])
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "stage-sa"
    assert pod["nodeSelector"] == {"pool": "train", "nvidia.com/gpu.present": "true"}
    assert [t["key"] for t in pod["tolerations"]] == ["batch", "nvidia.com/gpu"]
    assert {v["name"]: v["emptyDir"] for v in pod["volumes"]} == {
        "tmp": {},
        "dshm": {"medium": "Memory", "sizeLimit": "1Gi"},
    }
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert job["metadata"]["labels"]["team"] == "fraud"
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
    assert job["metadata"]["annotations"] == {"example.com/cost-centre": "42"}
    assert job["spec"]["template"]["metadata"]["annotations"] == {"example.com/cost-centre": "42"}


def test_settings_come_from_the_charts_environment_then_overrides():
    environ = {
        "MLBATCH_K8S_IMAGE_REPOSITORY": "registry.example.com/mlbatch",
        "MLBATCH_K8S_IMAGE_PULL_POLICY": "Always",
        "MLBATCH_K8S_STAGE_SERVICE_ACCOUNT": "prod-mlbatch-stage",
        "MLBATCH_K8S_CREDENTIALS_MODE": "serviceAccount",
        "MLBATCH_K8S_CONFIG_MAP": "prod-mlbatch-settings",
        "MLBATCH_K8S_INSTANCE": "prod",
        "MLBATCH_K8S_SCHEDULING": json.dumps({
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists"}],
            "nodeSelectorByStage": {"train": {"pool": "train"}},
            "gpu": {"nodeSelector": {"gpu": "a100"}, "tolerations": []},
        }),
    }  # fmt: skip
    settings = KubernetesSettings.from_env(environ=environ, namespace="ml", context=None)
    assert settings == KubernetesSettings(
        namespace="ml",
        image_repository="registry.example.com/mlbatch",
        image_pull_policy="Always",
        service_account="prod-mlbatch-stage",
        credentials_mode="serviceAccount",
        storage_config_map="prod-mlbatch-settings",
        instance="prod",
        node_selector={"pool": "batch"},
        tolerations=({"key": "batch", "operator": "Exists"},),
        node_selector_by_stage={"train": {"pool": "train"}},
        gpu_node_selector={"gpu": "a100"},
        gpu_tolerations=(),
    )
    assert KubernetesSettings.from_env(environ={}) == KubernetesSettings()
    with pytest.raises(BadInput, match="MLBATCH_K8S_CREDENTIALS_MODE"):
        KubernetesSettings.from_env(environ={"MLBATCH_K8S_CREDENTIALS_MODE": "keys"})
    with pytest.raises(BadInput, match="MLBATCH_K8S_SCHEDULING is not JSON"):
        KubernetesSettings.from_env(environ={"MLBATCH_K8S_SCHEDULING": "{nope"})


OWNED = {"owner_job_name": "mlbatch-run-1", "owner_job_uid": "0d6f7d0e-1111-4a5b-9c1d-2e3f4a5b6c7d",
         "owner_namespace": "ml"}  # fmt: skip


def test_stage_jobs_of_an_in_cluster_controller_belong_to_its_job():
    """Deleting the controller Job deletes its stage Jobs (garbage collection) instead of
    orphaning them; a restarted controller pod of the same Job is the same owner."""
    job = build_job(make_task(), KubernetesSettings(namespace="ml", **OWNED))
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "batch/v1", "kind": "Job", "name": "mlbatch-run-1",
        "uid": OWNED["owner_job_uid"], "controller": False, "blockOwnerDeletion": False,
    }]  # fmt: skip
    assert "ownerReferences" not in job["spec"]["template"]["metadata"]
    # From the host (no owner), or into another namespace (an owner there would read as
    # deleted, and the garbage collector would delete the stage Job): none.
    assert "ownerReferences" not in build_job(make_task(), KubernetesSettings())["metadata"]
    elsewhere = KubernetesSettings(namespace="other", **OWNED)
    assert "ownerReferences" not in build_job(make_task(), elsewhere)["metadata"]


def test_owner_and_pending_limits_come_from_the_charts_environment():
    environ = {
        "MLBATCH_K8S_OWNER_JOB": "mlbatch-run-1",
        "MLBATCH_K8S_OWNER_JOB_UID": OWNED["owner_job_uid"],
        "MLBATCH_K8S_OWNER_NAMESPACE": "ml",
        "MLBATCH_K8S_CREATE_TIMEOUT_S": "30",
        "MLBATCH_K8S_UNSCHEDULABLE_TIMEOUT_S": "0",
        "MLBATCH_K8S_IMAGE_PULL_TIMEOUT_S": "90.5",
    }
    settings = KubernetesSettings.from_env(environ=environ, namespace="ml")
    assert settings == KubernetesSettings(
        namespace="ml", create_timeout_s=30.0, unschedulable_timeout_s=0.0,
        image_pull_timeout_s=90.5, **OWNED,
    )  # fmt: skip
    defaults = KubernetesSettings()
    assert (defaults.create_timeout_s, defaults.unschedulable_timeout_s,
            defaults.image_pull_timeout_s) == (60.0, 120.0, 120.0)  # fmt: skip
    with pytest.raises(BadInput, match="MLBATCH_K8S_CREATE_TIMEOUT_S must be a number"):
        KubernetesSettings.from_env(environ={"MLBATCH_K8S_CREATE_TIMEOUT_S": "1m"})


def test_long_names_are_cut_to_63_characters_and_stay_unique():
    first = job_name(run_id=RUN_ID, stage="evaluate", attempt="a" * 40)
    second = job_name(run_id=RUN_ID, stage="evaluate", attempt="a" * 39 + "b")
    assert len(first) <= 63 and len(second) <= 63
    assert DNS_LABEL.match(first) and first != second
    assert first == job_name(run_id=RUN_ID, stage="evaluate", attempt="a" * 40)


@pytest.mark.parametrize("run_uri", ["file:///home/me/mlbatch/runs/x", "/data/runs/x", "runs/x"])
def test_local_storage_is_refused_with_a_clear_error(run_uri):
    with pytest.raises(BadInput, match="needs s3:// storage"):
        refuse_file_storage(run_uri)
    with pytest.raises(BadInput, match="needs s3:// storage"):
        build_job(make_task(run_uri=run_uri), KubernetesSettings())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run_id": "run-1"}, "YYYYMMDD-HHMMSS-xxxxxx"),
        ({"attempt": "Attempt_1"}, "DNS labels"),
        ({"code_version": "v1/abc"}, "image tag"),
        ({"timeout_s": 0}, "timeout must be positive"),
        ({"env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "looks like credentials"),
    ],
)
def test_bad_tasks_are_refused(changes, message):
    with pytest.raises(BadInput, match=message):
        build_job(make_task(**changes), KubernetesSettings())


def test_the_builder_module_needs_no_kubernetes_client():
    code = "import sys, mlbatch.controller.kubernetes_job; print('kubernetes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def example_task(stage: str, *, gpu: int = 0) -> StageTask:
    """The tasks behind docs/examples/jobs: the flights demo's resources."""
    resources = {"train": Resources(cpu="4", memory="8Gi", gpu=gpu)}.get(stage, Resources())
    return StageTask(
        run_id=RUN_ID,
        run_uri=f"s3://mlbatch/runs/{RUN_ID}",
        stage=stage,
        attempt="1-3fa2",
        code_version="0123456789ab",
        resources=resources,
    )


def example_files() -> dict[str, str]:
    settings = KubernetesSettings(namespace="mlbatch")
    examples = {f"{stage}.yaml": example_task(stage) for stage in STAGES}
    examples["train-gpu.yaml"] = example_task("train", gpu=1)
    header = (
        '# Rendered by build_job() with KubernetesSettings(namespace="mlbatch"); regenerate:\n'
        "#   MLBATCH_UPDATE_EXAMPLES=1 .venv/bin/pytest tests/unit/test_kubernetes_job.py\n"
    )
    return {name: header + render_job_yaml(task, settings) for name, task in examples.items()}


def test_the_examples_in_docs_are_what_the_builder_renders():
    expected = example_files()
    if os.environ.get("MLBATCH_UPDATE_EXAMPLES") == "1":
        EXAMPLES.mkdir(parents=True, exist_ok=True)
        for name, text in expected.items():
            (EXAMPLES / name).write_text(text)
    for name, text in expected.items():
        assert (EXAMPLES / name).read_text() == text, f"{name} is stale: see its header"
        job = yaml.safe_load(text)
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


# The mapping from what Kubernetes reports to a StageStatus (pure; the executor tests drive
# the same cases through the real client).


def pod(phase: str, *, terminated=None, waiting=None, conditions=(), reason=None, **metadata):
    state = {"terminated": terminated} if terminated else {"waiting": waiting} if waiting else {}
    status = {
        "phase": phase,
        "conditions": list(conditions),
        "containerStatuses": [{"name": "stage", "state": state}],
    }
    if reason:
        status["reason"], status["message"] = reason, "The node was low on resource: memory."
    return {"metadata": metadata, "spec": {"nodeName": "node-1"}, "status": status}


def job(*conditions, **spec):
    built = build_job(make_task(), KubernetesSettings())
    built["spec"] |= spec
    built["status"] = {"conditions": [dict(c, status="True") for c in conditions]}
    return built


FAILED = {
    "type": "Failed",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
}


@pytest.mark.parametrize(
    ("the_job", "pods", "state", "retryable", "reason"),
    [
        (job(), [], State.PENDING, False, "waiting for the Job to create its pod"),
        (job(suspend=True), [], State.PENDING, False, "suspended"),
        (job(), [pod("Pending", waiting={"reason": "ContainerCreating"})], State.PENDING, False,
         "ContainerCreating"),
        (job(), [pod("Pending", conditions=[{"type": "PodScheduled", "status": "False",
                 "reason": "Unschedulable", "message": "0/3 nodes: Insufficient nvidia.com/gpu"}])],
         State.PENDING, False, "Unschedulable: 0/3 nodes: Insufficient nvidia.com/gpu"),
        # The kubelet retries pulls: a first sighting waits (kubernetes_pending decides when
        # waiting ends; tests/unit/test_kubernetes_pending.py).
        (job(), [pod("Pending", waiting={"reason": "ImagePullBackOff", "message": "not found"})],
         State.PENDING, False, "ImagePullBackOff: not found (the kubelet retries)"),
        (job(), [pod("Pending", waiting={"reason": "ErrImageNeverPull", "message": "absent"})],
         State.FAILED, False, "ErrImageNeverPull: absent"),
        (job(), [pod("Pending", waiting={"reason": "CreateContainerConfigError",
                 "message": 'secret "mlbatch-credentials" not found'})],
         State.FAILED, False, "CreateContainerConfigError: secret"),
        (job(), [pod("Running")], State.RUNNING, False, "running on node node-1"),
        (job(), [pod("Failed", reason="Evicted", conditions=[{"type": "DisruptionTarget",
                 "status": "True"}])], State.PENDING, False,
         "pod disrupted (Evicted: The node was low on resource: memory.): the Job replaces it"),
        (job(), [pod("Failed", reason="Evicted", creationTimestamp="2026-11-26T10:00:00Z"),
                 pod("Running", creationTimestamp="2026-11-26T10:05:00Z")],
         State.RUNNING, False, "running"),
        (job({"type": "Complete"}), [], State.SUCCEEDED, False, "exit code 0"),
        (job(FAILED), [pod("Failed", terminated={"exitCode": 1, "message": "trace\nValueError: x"})],  # noqa: E501
         State.FAILED, True, "exit code 1: ValueError: x"),
        (job({"type": "Failed", "reason": "PodFailurePolicy", "message": "Container stage for "
              "pod ml/p failed with exit code 3 matching FailJob rule at index 1"}), [],
         State.FAILED, False, "exit code 3 (validation or quality gate failed)"),
        (job(FAILED), [pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})],
         State.FAILED, True, "OOMKilled: the stage used more than its memory limit (4Gi)"),
        (job(FAILED), [pod("Failed", reason="Evicted")], State.FAILED, True,
         "Evicted: The node was low on resource: memory."),
        (job({"type": "Failed", "reason": "DeadlineExceeded", "message": "too long"}),
         [pod("Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                      "reason": "Unschedulable", "message": "no nodes"}])],
         State.FAILED, True, "DeadlineExceeded: ran longer than activeDeadlineSeconds (5400 s); "
         "its pod never started: Unschedulable: no nodes"),
        (job(FAILED), [], State.FAILED, True, "BackoffLimitExceeded: Job has reached"),
    ],
)  # fmt: skip
def test_job_and_pod_state_map_to_a_status_with_a_reason(the_job, pods, state, retryable, reason):
    status = job_status(the_job, pods)
    assert (status.state, status.retryable) == (state, retryable)
    assert reason in status.reason, status.reason


def test_a_job_being_deleted_is_cancelled():
    being_deleted = job()
    being_deleted["metadata"]["deletionTimestamp"] = "2026-11-26T10:00:00Z"
    assert job_status(being_deleted, [pod("Running")]).state is State.CANCELLED


def test_exit_codes_reach_the_status():
    failed = job(FAILED)
    for code, retryable in ((1, True), (2, False), (4, False), (137, True)):
        status = job_status(failed, [pod("Failed", terminated={"exitCode": code})])
        assert (status.exit_code, status.retryable) == (code, retryable)
